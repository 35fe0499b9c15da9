"""A stand-in for a GPU on machines without one: arrays that refuse to mix with NumPy's.

`DeviceArray` is a NumPy array subclass that behaves as CuPy's arrays do towards the host: an
operation that combines it with a plain NumPy array (as an operand, an `out=`, an index or an
assigned value) raises TypeError. Training a model whose device is `STRICT` therefore fails
wherever the engine would create an array on the host and mix it into device work, which is
what would break on a real GPU. The arithmetic itself is NumPy's, so results can be compared
with a CPU run bit for bit.

It also captures as CUDA does. While a `StandInStream` captures, an operation that writes into
device arrays is recorded, not run, with its operands and its Python numbers as they are then
(a captured kernel keeps its arguments); `end_capture` returns the recording, and `launch`
runs it again. An allocation goes through the current allocator (`using_allocator`, as CuPy's
do); reading a value back to the host (`float()`, `bool()`, `.get()`, ...) raises `CaptureError`
and invalidates the capture. `STRICT`'s `prepare_graph` hands the static steps to the real
`cuda_graph.GraphRunner` over these stand-ins, so a step is run once, captured, and replayed
from its recording: a number a step bakes in where it should read an array shows as a
difference from the CPU.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chainrule.backend import arrays, cuda_graph


class HostArrayError(TypeError):
    """A plain NumPy array met a device array."""


class CaptureError(RuntimeError):
    """A host read inside a capture (CUDA: cudaErrorStreamCaptureUnsupported)."""


class Capture:
    """The capture in progress, if any: its recorded operations, and whether it was invalidated."""

    recording: list[Callable[[], object]] | None = None
    invalidated = False
    allocator: Callable[[int], object] | None = None


def _record(operation: Callable[[], object]) -> bool:
    """Record `operation` if a capture is in progress (then it is not run now)."""
    if Capture.recording is None:
        return False
    Capture.recording.append(operation)
    return True


def _allocate(nbytes: int) -> None:
    """Device memory is being taken: ask the current allocator, as CuPy's pool does."""
    if Capture.allocator is not None:
        Capture.allocator(nbytes)


def _refuse_in_capture(what: str) -> None:
    if Capture.recording is not None:
        Capture.invalidated = True
        raise CaptureError(f"{what} inside a captured step")


@contextlib.contextmanager
def using_allocator(allocator: Callable[[int], object]) -> Iterator[None]:
    """CuPy's `cupy.cuda.using_allocator`: every allocation inside asks `allocator`."""
    previous, Capture.allocator = Capture.allocator, allocator
    try:
        yield
    finally:
        Capture.allocator = previous


class Recording:
    """A captured step: the device operations it asked for (CuPy's `cupy.cuda.Graph`)."""

    def __init__(self, operations: list[Callable[[], object]]) -> None:
        self.operations = operations

    def launch(self, stream: Any = None) -> None:
        for operation in self.operations:
            operation()


class StandInStream:
    """A CUDA stream's capture, as CuPy's `Stream` offers it; records the capture modes asked for."""

    def __init__(self) -> None:
        self.capture_modes: list[Any] = []

    def __enter__(self) -> StandInStream:
        return self

    def __exit__(self, *exception: Any) -> None:
        pass

    def record(self) -> None:
        return None

    def wait_event(self, event: Any) -> None:
        pass

    def begin_capture(self, mode: Any = None) -> None:
        self.capture_modes.append(mode)
        Capture.recording, Capture.invalidated = [], False

    def end_capture(self) -> Recording:
        operations, invalidated = Capture.recording, Capture.invalidated
        Capture.recording, Capture.invalidated = None, False
        if invalidated:
            raise CaptureError("cudaErrorStreamCaptureInvalidated: the capture was invalidated")
        return Recording(operations or [])


STAND_IN_STREAM = StandInStream()  # the current stream a step's batch is gathered on
STAND_IN_CUDA = types.SimpleNamespace(
    get_current_stream=lambda: STAND_IN_STREAM,
    using_allocator=using_allocator,
    runtime=types.SimpleNamespace(streamCaptureModeGlobal=0, streamCaptureModeRelaxed=2),
)


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """Capture what runs inside, refusing allocations and host reads, then launch it."""
    stream = StandInStream()
    stream.begin_capture(STAND_IN_CUDA.runtime.streamCaptureModeGlobal)
    try:
        with using_allocator(cuda_graph.refuse_allocation):
            yield
    except BaseException:
        Capture.recording = None
        raise
    stream.end_capture().launch()


def _is_host(value: Any) -> bool:
    return isinstance(value, np.ndarray) and not isinstance(value, DeviceArray)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return _leaves(list(value.values()))
    return [value]


def _refuse_host(values: Any, where: str) -> None:
    if any(_is_host(leaf) for leaf in _leaves(values)):
        raise HostArrayError(f"{where}: a NumPy (host) array was mixed with a device array")


def _plain(value: Any) -> Any:
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value).view(DeviceArray)  # 0-d results stay arrays, as CuPy's do
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


def _new_result(result: Any, recompute_into: Callable[[np.ndarray], object], what: str) -> Any:
    """`result`, computed by an operation that allocates it: its memory asked of the allocator
    and, inside a capture, recomputed into it when the recording is launched."""
    if isinstance(result, tuple):
        _refuse_in_capture(f"{what} allocating several results")
        return _wrap(result)
    result = np.asarray(result)
    _allocate(result.nbytes)
    if Capture.recording is None:
        return result.view(DeviceArray)
    target = np.empty_like(result)
    Capture.recording.append(lambda: recompute_into(target))
    return target.view(DeviceArray)


class DeviceArray(np.ndarray):
    """An array on the stand-in device."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        _refuse_host([inputs, out or ()], f"np.{ufunc.__name__}")
        operation, plain_inputs = getattr(ufunc, method), _plain(inputs)
        if out is None and method != "at":  # ufunc.at works in place
            result = operation(*plain_inputs, **kwargs)
            return _new_result(result, lambda target: operation(*plain_inputs, out=target, **kwargs), ufunc.__name__)
        if out is not None:
            kwargs["out"] = _plain(out)
        if not _record(lambda: operation(*plain_inputs, **kwargs)):
            operation(*plain_inputs, **kwargs)
        if out is None:
            return None
        return out[0] if len(out) == 1 else out

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        _refuse_host([args, kwargs], f"np.{func.__name__}")
        plain_args, plain_kwargs = _plain(args), _plain(kwargs)
        if func is np.copyto or "out" in kwargs:  # writes into an array it is given
            if not _record(lambda: func(*plain_args, **plain_kwargs)):
                func(*plain_args, **plain_kwargs)
            return kwargs.get("out")
        result = func(*plain_args, **plain_kwargs)
        operands = [leaf for leaf in _leaves([plain_args, plain_kwargs]) if isinstance(leaf, np.ndarray)]
        if isinstance(result, np.ndarray) and not any(np.shares_memory(result, array) for array in operands):
            return _new_result(
                result, lambda target: np.copyto(target, func(*plain_args, **plain_kwargs)), func.__name__
            )
        return _wrap(result)  # a view, or not an array

    def __getitem__(self, index: Any) -> Any:
        _refuse_host(index, "indexing")
        source, plain_index = self.view(np.ndarray), _plain(index)
        result = np.ndarray.__getitem__(source, plain_index)
        if any(isinstance(part, (np.ndarray, list)) for part in (index if isinstance(index, tuple) else (index,))):
            return _new_result(result, lambda target: np.copyto(target, source[plain_index]), "fancy indexing")
        return _wrap(result)

    def __setitem__(self, index: Any, values: Any) -> None:
        _refuse_host([index, values], "assignment")
        target, plain_index, plain_values = self.view(np.ndarray), _plain(index), _plain(values)
        if not _record(lambda: np.ndarray.__setitem__(target, plain_index, plain_values)):
            np.ndarray.__setitem__(target, plain_index, plain_values)

    def fill(self, value: Any) -> None:
        target = self.view(np.ndarray)
        if not _record(lambda: target.fill(value)):
            target.fill(value)

    def get(self) -> np.ndarray:
        """A NumPy copy, as CuPy's `get`."""
        _refuse_in_capture("a copy to the host")
        return np.array(self.view(np.ndarray), copy=True)

    def _host_read(self, conversion: Any) -> Any:
        _refuse_in_capture("reading a value back to the host")
        return conversion(self.view(np.ndarray))

    def __float__(self) -> float:
        return self._host_read(float)

    def __int__(self) -> int:
        return self._host_read(int)

    def __bool__(self) -> bool:
        return self._host_read(bool)

    def __index__(self) -> int:
        return self._host_read(lambda array: array.__index__())

    def item(self, *arguments: Any) -> Any:
        return self._host_read(lambda array: array.item(*arguments))


def _created(template: np.ndarray, fill: Callable[[np.ndarray], object] | None = None) -> DeviceArray:
    """A new device array shaped as `template`: its memory asked of the allocator, then filled by
    `fill` (a kernel: recorded inside a capture)."""
    _allocate(template.nbytes)
    if fill is not None and not _record(lambda: fill(template)):
        fill(template)
    return template.view(DeviceArray)


class StrictModule:
    """The creation functions of the stand-in device (what `cupy.ones` and friends are to CuPy)."""

    def asarray(self, values: Any, dtype: Any = None) -> DeviceArray:
        if isinstance(values, DeviceArray) and (dtype is None or values.dtype == dtype):
            return values
        _refuse_in_capture("copying data to the device")
        return _created(np.array(_plain(values), dtype=dtype, copy=True))

    def ones(self, shape: Any, dtype: Any = float) -> DeviceArray:
        return _created(np.empty(shape, dtype), lambda array: array.fill(1))

    def zeros(self, shape: Any, dtype: Any = float) -> DeviceArray:
        return _created(np.empty(shape, dtype), lambda array: array.fill(0))

    def empty(self, shape: Any, dtype: Any = float, order: str = "C") -> DeviceArray:
        return _created(np.empty(shape, dtype, order=order))

    def arange(self, *arguments: Any) -> DeviceArray:
        values = np.arange(*arguments)
        return _created(np.empty_like(values), lambda array: np.copyto(array, values))


def _as_strided(array: DeviceArray, shape: Any, strides: Any) -> DeviceArray:
    """CuPy's `cupy.lib.stride_tricks.as_strided` (a view: allowed inside a capture)."""
    return np.lib.stride_tricks.as_strided(array, shape, strides, subok=True)


StrictModule.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))  # type: ignore[attr-defined]
STRICT_MODULE = StrictModule()
arrays.register(DeviceArray, STRICT_MODULE)


def prepare_graph(training: Any, allow_tf32: bool) -> None:
    """Hand the static steps to the real `cuda_graph.GraphRunner`, over the stand-in stream and
    allocator: each step runs once, is captured from its second run on, and is replayed after."""
    cuda_graph.replay_steps(training, STAND_IN_CUDA, StandInStream())


STRICT = arrays.Device("strict", STRICT_MODULE, prepare_graph=prepare_graph)
