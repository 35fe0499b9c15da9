"""Where arrays live: NumPy on the CPU, or CuPy on a CUDA GPU (the optional extra `gpu`).

The layers, losses and optimizers are written against NumPy's API. CuPy arrays implement
NumPy's dispatch protocols, so `np.maximum(x, 0)`, `np.matmul(a, b, out=c)` or `a @ b` on CuPy
arrays run on the GPU unchanged. What does not dispatch is creating an array from nothing
(`np.ones(n)` has no array to follow) and the few things CuPy lacks, such as read-only flags:
those go through this module, which asks the array where it lives. Nothing else in the engine
looks at the device.

A `Device` moves data: `to_device` before training (once), `to_host` for results.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.backend.cuda_graph import capture_steps
from chainrule.errors import DeviceUnavailableError

GPU_EXTRA = "pip install 'chainrule[gpu]' (CuPy for CUDA 13: cupy-cuda13x)"

# Array type -> the NumPy-like module that creates arrays of that type. CuPy's is found on first
# sight of a CuPy array; other array types (a test's device double) register themselves.
_MODULES: dict[type, types.ModuleType | Any] = {np.ndarray: np}


def register(array_type: type, module: Any) -> None:
    """Let arrays of `array_type` be created through `module` (NumPy's creation functions)."""
    _MODULES[array_type] = module


def array_module(array: Any) -> Any:
    """The module that creates arrays where `array` lives: numpy, cupy, or a registered one."""
    return _module_of_type(type(array))


def _module_of_type(array_type: type) -> Any:
    module = _MODULES.get(array_type)
    if module is None:
        if array_type.__module__.split(".")[0] == "cupy":
            import cupy

            module = _MODULES[array_type] = cupy
        else:
            module = np
    return module


def on_host(array: Any) -> bool:
    """Whether `array` is a plain NumPy array in the computer's memory (where the compiled
    kernels and NumPy-only routines apply)."""
    return type(array) is np.ndarray


def read_only(array: Any) -> Any:
    """Mark a cached array read-only where the array type supports it (NumPy does, CuPy not)."""
    if on_host(array):
        array.flags.writeable = False
    return array


def cached_ones(length: int, dtype: np.dtype, like: Any) -> Any:
    """A vector of `length` ones where `like` lives, cached per array type and device (read-only
    on the host; CuPy has no read-only arrays, so nothing may write into it)."""
    return _ones(type(like), _device_id(like), length, dtype)  # type: ignore[arg-type]  # classes are hashable


def cached_arange(length: int, like: Any) -> Any:
    """0..length-1 where `like` lives, cached per array type and device (read-only on the host)."""
    return _arange(type(like), _device_id(like), length)  # type: ignore[arg-type]  # classes are hashable


def _device_id(array: Any) -> int | None:
    """The number of the GPU holding `array` (CuPy's `array.device.id`), None for the host."""
    return getattr(getattr(array, "device", None), "id", None)


@functools.lru_cache(maxsize=32)
def _ones(array_type: type, device_id: int | None, length: int, dtype: np.dtype) -> Any:
    with _on_device(array_type, device_id):
        return read_only(_module_of_type(array_type).ones(length, dtype=dtype))


@functools.lru_cache(maxsize=8)
def _arange(array_type: type, device_id: int | None, length: int) -> Any:
    with _on_device(array_type, device_id):
        return read_only(_module_of_type(array_type).arange(length))


def _on_device(array_type: type, device_id: int | None) -> contextlib.AbstractContextManager:
    """Create arrays on GPU `device_id` inside (CuPy's `Device` context); nothing to do on the host."""
    if device_id is None:
        return contextlib.nullcontext()
    return _module_of_type(array_type).cuda.Device(device_id)


def assign(target: Any, values: Any) -> None:
    """target[...] = values, copying `values` to where `target` lives first."""
    target[...] = array_module(target).asarray(values)


def take_rows(source: Any, indices: Any, out: Any) -> None:
    """out[...] = source[indices] along the first axis, for indices known to be in range (rows of
    a shuffled order). NumPy's `take` with `out` under its default mode="raise" gathers into a
    temporary first (128 rows of 784 float32 from an 80 MB array: 280-350 us against 90-120 with
    mode="clip", which never clips these indices); CuPy's `take` has no mode."""
    if on_host(source):
        np.take(source, indices, axis=0, out=out, mode="clip")
    else:
        np.take(source, indices, axis=0, out=out)


def strided_view(array: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A view of `array` with these shape and strides (in bytes), where it lives: read-only on
    the host (its elements overlap), through the array module's own `as_strided` elsewhere
    (CuPy's takes no `writeable`)."""
    if on_host(array):
        return np.lib.stride_tricks.as_strided(array, shape, strides, writeable=False)
    return array_module(array).lib.stride_tricks.as_strided(array, shape=shape, strides=strides)


def to_host(array: Any) -> np.ndarray:
    """`array` as a NumPy array (a copy from the GPU; NumPy arrays are returned as they are)."""
    if on_host(array):
        return array
    get = getattr(array, "get", None)  # CuPy's device-to-host copy
    return get() if callable(get) else np.asarray(array)


class Device:
    """Where a model's parameters, optimizer state and training data live.

    `Device("cpu")` keeps NumPy arrays; `Device("cuda")` puts them on the current CUDA GPU
    through CuPy, and raises one line naming what is missing where that is impossible.
    """

    def __init__(
        self,
        name: str,
        module: Any = np,
        synchronize: Callable[[], None] = lambda: None,
        prepare_graph: Callable[[Any, bool], None] = lambda training, allow_tf32: None,
    ) -> None:
        self.name = name
        self.module = module
        self.synchronize = synchronize  # waits until the work queued so far has finished (for timing)
        # Makes a static training (`chainrule.backend.cuda_graph.GraphTarget`) replay its steps
        # from a captured graph (CUDA); elsewhere the steps run as they are.
        self.prepare_graph = prepare_graph

    @property
    def captures(self) -> bool:
        """Whether this device replays captured steps (a CUDA device), so static steps pay anywhere."""
        return self.name == "cuda"

    def to_device(self, array: Any) -> Any:
        """`array` on this device (no copy where it is there already)."""
        return to_host(array) if self.module is np else self.module.asarray(array)

    def to_host(self, array: Any) -> np.ndarray:
        return to_host(array)

    def __repr__(self) -> str:
        return f"Device({self.name!r})"

    def __reduce__(self) -> tuple:
        return find_device, (self.name, "a pickled Device")  # found again by name: a module does not pickle

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and (self.name, self.module) == (other.name, other.module)

    def __hash__(self) -> int:
        return hash(self.name)


CPU = Device("cpu")


def _cuda() -> Device:
    try:
        import cupy
    except ImportError as error:
        if importlib.util.find_spec("cupy") is None:
            raise DeviceUnavailableError(f"device='cuda' needs CuPy, which is not installed: {GPU_EXTRA}") from error
        reason = next((line.strip() for line in str(error).splitlines() if line.strip(" =")), type(error).__name__)
        raise DeviceUnavailableError(
            f"device='cuda': CuPy is installed but does not import ({reason}); install the CuPy build for "
            "this machine's CUDA, such as cupy-cuda13x"
        ) from error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDARuntimeError when no driver is present
        raise DeviceUnavailableError(f"device='cuda': CuPy found no usable CUDA driver or GPU ({error})") from error
    if count == 0:
        raise DeviceUnavailableError("device='cuda': CuPy is installed but this machine has no CUDA GPU")

    return Device("cuda", cupy, lambda: cupy.cuda.get_current_stream().synchronize(), capture_steps)


FACTORIES: dict[str, Callable[[], Device]] = {"cpu": lambda: CPU, "cuda": _cuda}


def find_device(name: Any, owner: str) -> Device:
    """The Device called `name` ('cpu' or 'cuda'; a Device passes through), or a clear error."""
    if isinstance(name, Device):
        return name
    if name not in FACTORIES:
        raise ValueError(f"{owner}: device must be one of {list(FACTORIES)}, got {name!r}")
    return FACTORIES[name]()
