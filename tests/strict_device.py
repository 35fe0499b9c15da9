"""A stand-in for a GPU on machines without one: arrays that refuse to mix with NumPy's.

`DeviceArray` is a NumPy array subclass that behaves as CuPy's arrays do towards the host: an
operation that combines it with a plain NumPy array (as an operand, an `out=`, an index or an
assigned value) raises TypeError. Training a model whose device is `STRICT` therefore fails
wherever the engine would create an array on the host and mix it into device work, which is
what would break on a real GPU. The arithmetic itself is NumPy's, so results can be compared
with a CPU run bit for bit.

Inside `capturing()` it also behaves as a CUDA stream capture: creating an array (a result
without `out=`, fancy indexing, a creation function) or reading a value back to the host
(`float()`, `bool()`, `.get()`, ...) raises `CaptureError`. `STRICT`'s `prepare_graph` runs
every static training step that way after its first run, as a CUDA device captures it.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.backend import arrays


class HostArrayError(TypeError):
    """A plain NumPy array met a device array."""


class CaptureError(RuntimeError):
    """An allocation or a host read inside `capturing()`."""


CAPTURE = {"active": False}


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """Refuse allocations and host reads, as a CUDA stream capture does."""
    CAPTURE["active"] = True
    try:
        yield
    finally:
        CAPTURE["active"] = False


def _refuse_in_capture(what: str) -> None:
    if CAPTURE["active"]:
        raise CaptureError(f"{what} inside a captured step")


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


class DeviceArray(np.ndarray):
    """An array on the stand-in device."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        _refuse_host([inputs, out or ()], f"np.{ufunc.__name__}")
        if out is not None:
            kwargs["out"] = _plain(out)
        if out is None and method != "at":  # ufunc.at works in place
            _refuse_in_capture(f"np.{ufunc.__name__} allocating its result")
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        _refuse_host([args, kwargs], f"np.{func.__name__}")
        result = func(*_plain(args), **_plain(kwargs))
        arrays = [leaf for leaf in _leaves(_plain([args, kwargs])) if isinstance(leaf, np.ndarray)]
        if isinstance(result, np.ndarray) and not any(np.shares_memory(result, array) for array in arrays):
            _refuse_in_capture(f"np.{func.__name__} allocating its result")
        return _wrap(result)

    def __getitem__(self, index: Any) -> Any:
        _refuse_host(index, "indexing")
        if any(isinstance(part, (np.ndarray, list)) for part in (index if isinstance(index, tuple) else (index,))):
            _refuse_in_capture("fancy indexing (a copy)")
        return _wrap(np.ndarray.__getitem__(self.view(np.ndarray), _plain(index)))

    def __setitem__(self, index: Any, values: Any) -> None:
        _refuse_host([index, values], "assignment")
        np.ndarray.__setitem__(self.view(np.ndarray), _plain(index), _plain(values))

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


class StrictModule:
    """The creation functions of the stand-in device (what `cupy.ones` and friends are to CuPy)."""

    def asarray(self, values: Any, dtype: Any = None) -> DeviceArray:
        _refuse_in_capture("creating an array")
        if isinstance(values, DeviceArray) and (dtype is None or values.dtype == dtype):
            return values
        return np.array(_plain(values), dtype=dtype, copy=True).view(DeviceArray)

    def ones(self, shape: Any, dtype: Any = float) -> DeviceArray:
        _refuse_in_capture("creating an array")
        return np.ones(shape, dtype).view(DeviceArray)

    def zeros(self, shape: Any, dtype: Any = float) -> DeviceArray:
        _refuse_in_capture("creating an array")
        return np.zeros(shape, dtype).view(DeviceArray)

    def empty(self, shape: Any, dtype: Any = float, order: str = "C") -> DeviceArray:
        _refuse_in_capture("creating an array")
        return np.empty(shape, dtype, order=order).view(DeviceArray)

    def arange(self, *arguments: Any) -> DeviceArray:
        _refuse_in_capture("creating an array")
        return np.arange(*arguments).view(DeviceArray)


def _as_strided(array: DeviceArray, shape: Any, strides: Any) -> DeviceArray:
    """CuPy's `cupy.lib.stride_tricks.as_strided` (a view: allowed inside a capture)."""
    return np.lib.stride_tricks.as_strided(array, shape, strides, subok=True)


StrictModule.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))  # type: ignore[attr-defined]
STRICT_MODULE = StrictModule()
arrays.register(DeviceArray, STRICT_MODULE)


def prepare_graph(training: Any, allow_tf32: bool) -> None:
    """Run each static step inside `capturing()` from its second run on, as a CUDA device runs a
    step eagerly once (its layers allocate their working arrays then) and captures it after."""
    run = training.run
    warmed: set[int] = set()

    def captured(step: Any) -> None:
        if id(step) not in warmed:
            warmed.add(id(step))
            run(step)
            return
        with capturing():
            run(step)

    training.run = captured


STRICT = arrays.Device("strict", STRICT_MODULE, prepare_graph=prepare_graph)
