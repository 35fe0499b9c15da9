"""CUDA graphs for `fit(graph=True)` on a GPU: each static training step captured once, then replayed.

A static step (`chainrule.training.static_step`) allocates nothing and reads nothing back, so CuPy's
stream capture can record it whole. CuPy refuses its own cuBLAS calls during a capture (CuPy
issue #6290) while cuBLAS itself captures fine, so the step's matrix products go through
`Cublas`, a minimal ctypes binding of the very cuBLAS library CuPy loaded, bound to the capturing
stream and given its workspace beforehand (nothing may be allocated inside the capture).

For each batch size the first step runs eagerly (CuPy compiles its kernels then), the second is
captured and launched, and every later one is a replay; so does a unit of several epochs
(`static_step.RecordedEpochs`), recorded with its steps uncaptured inside it. A capture runs in
CUDA's global mode (an unsafe call from any thread fails it) and with an allocator that refuses
every allocation: memory taken from CuPy's pool inside a capture would be baked into the graph
while the pool hands it to other arrays afterwards, so replays would write into them. If a
capture fails in any way, that batch size runs eagerly from then on, with one warning saying why.

TF32 (`allow_tf32`) applies to the layers' products only (`Cublas.tf32_matmul`); the sums the
step computes as products with ones (the softmax's normalisation, the loss, bias gradients) keep
full float32 precision (`Cublas.matmul`).

The stream, the cuBLAS handle and its workspace are made once per device and shared by every
`fit` (`device_resources`). The graphs belong to the static training whose buffers they hold;
`Model.fit` keeps its last one for the next fit of the same model where nothing it was built
from has changed (`static_step.StaticTraining.serves`), so a loop of short fits on one model
captures once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import numpy as np

LOG = logging.getLogger("chainrule")
WORKSPACE_BYTES = 32 << 20  # cuBLAS's own scratch space, allocated before any capture
OPERATION_NONE, OPERATION_TRANSPOSE = 0, 1  # cublasOperation_t
DEFAULT_MATH, TF32_TENSOR_OP_MATH = 0, 3  # cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH

_handle, _int, _pointer = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p


def _gemm_signature(scalar: type) -> list[type]:
    """cublas<t>gemm_v2(handle, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc)."""
    factor: type = ctypes.POINTER(scalar)
    return [_handle, _int, _int, _int, _int, _int, factor, _pointer, _int, _pointer, _int, factor, _pointer, _int]


# The argument types of each cuBLAS function called (cublas_api.h); each returns a cublasStatus_t.
SIGNATURES: dict[str, list[type]] = {
    "cublasCreate_v2": [ctypes.POINTER(_handle)],
    "cublasDestroy_v2": [_handle],
    "cublasGetVersion_v2": [_handle, ctypes.POINTER(_int)],
    "cublasSetStream_v2": [_handle, _pointer],
    "cublasSetWorkspace_v2": [_handle, _pointer, ctypes.c_size_t],
    "cublasSetMathMode": [_handle, _int],
    "cublasGetMathMode": [_handle, ctypes.POINTER(_int)],
    "cublasSgemm_v2": _gemm_signature(ctypes.c_float),
    "cublasDgemm_v2": _gemm_signature(ctypes.c_double),
}


class GraphTarget(Protocol):
    """What capture needs of a static training: the products its steps call (layer products and
    sums as products with ones), how a step runs, and how a unit of several epochs runs (all
    replaced here). A step is any hashable object that `run` takes; a unit, a hashable callable."""

    matmul: Callable[[Any, Any, Any], object]
    sum_product: Callable[[Any, Any, Any], object]
    run: Callable[[Any], None]
    run_recorded: Callable[[Any], None] | None
    replayed: bool


class CublasError(RuntimeError):
    """A cuBLAS call returned a status other than CUBLAS_STATUS_SUCCESS, or the library cannot serve."""


class AllocationInCapture(RuntimeError):
    """A captured step asked for device memory."""


def declare(library: Any) -> Any:
    """`library` with the argument and result types of the functions called here declared, so
    ctypes converts (and checks) every argument instead of guessing."""
    for name, argument_types in SIGNATURES.items():
        function = getattr(library, name)  # AttributeError: a cuBLAS without this symbol
        function.argtypes, function.restype = argument_types, ctypes.c_int
    return library


def cupys_cublas(cupy: Any) -> Any:
    """The cuBLAS library CuPy itself loaded, typed (`declare`): found by its soname among the
    libraries already loaded, so it is the same copy; else (no such soname loaded) the one
    `cuda.pathfinder` finds, which `Cublas` checks is the version CuPy uses."""
    from cupy_backends.cuda.libs import cublas  # noqa: F401  # loads CuPy's cuBLAS

    soname = f"libcublas.so.{cupy.cuda.runtime.runtimeGetVersion() // 1000}"
    try:
        return declare(ctypes.CDLL(soname, mode=os.RTLD_NOLOAD))
    except (OSError, AttributeError):
        from cuda.pathfinder import load_nvidia_dynamic_lib  # installed with CuPy 14

        return declare(ctypes.CDLL(load_nvidia_dynamic_lib("cublas").abs_path))


class Cublas:
    """cuBLAS's GEMM for row-major device arrays, on one stream, called through ctypes.

    `library`: the typed cuBLAS library (`cupys_cublas`); `stream_pointer`: the stream every call
    runs on; `workspace`: a device array cuBLAS may use as scratch (kept alive here);
    `expected_version`: the cuBLAS version CuPy reports, refused if the library's differs.
    """

    def __init__(self, library: Any, stream_pointer: int, workspace: Any, expected_version: int | None = None) -> None:
        self.library, self.workspace = library, workspace
        self.handle = _handle()
        self._call("cublasCreate_v2", ctypes.byref(self.handle))
        weakref.finalize(self, library.cublasDestroy_v2, self.handle)
        version = _int()
        self._call("cublasGetVersion_v2", self.handle, ctypes.byref(version))
        if expected_version is not None and version.value != expected_version:
            raise CublasError(f"the cuBLAS found is version {version.value}, CuPy uses {expected_version}")
        self._call("cublasSetStream_v2", self.handle, _pointer(stream_pointer))
        self._call(
            "cublasSetWorkspace_v2", self.handle, _pointer(workspace.data.ptr), ctypes.c_size_t(workspace.nbytes)
        )
        self.math_mode = DEFAULT_MATH
        # alpha = 1 and beta = 0 stay alive here: cuBLAS reads them through these pointers.
        self.gemms = {
            np.dtype(np.float32): ("cublasSgemm_v2", ctypes.c_float(1.0), ctypes.c_float(0.0)),
            np.dtype(np.float64): ("cublasDgemm_v2", ctypes.c_double(1.0), ctypes.c_double(0.0)),
        }

    def _call(self, name: str, *arguments: Any) -> None:
        status = getattr(self.library, name)(*arguments)
        if status != 0:
            raise CublasError(f"{name} returned cuBLAS status {status}")

    def read_math_mode(self) -> int:
        """The handle's cublasMath_t, as cuBLAS reports it."""
        mode = _int()
        self._call("cublasGetMathMode", self.handle, ctypes.byref(mode))
        return mode.value

    def matmul(self, a: Any, b: Any, out: Any) -> None:
        """out (m, n) = a (m, k) @ b (k, n) in full precision; a and b C- or F-ordered, out C-ordered."""
        self._gemm(a, b, out, DEFAULT_MATH)

    def tf32_matmul(self, a: Any, b: Any, out: Any) -> None:
        """`matmul` on TF32 tensor cores (float32 inputs rounded to 10 mantissa bits)."""
        self._gemm(a, b, out, TF32_TENSOR_OP_MATH)

    def _gemm(self, a: Any, b: Any, out: Any, math_mode: int) -> None:
        """cuBLAS is column-major: a row-major array is its transpose there, so the call computes
        out^T = b^T a^T, with a transposed operand for each F-ordered (transposed view) input.
        The math mode is the handle's when the call is made (and so when it is captured)."""
        if math_mode != self.math_mode:
            self._call("cublasSetMathMode", self.handle, _int(math_mode))
            self.math_mode = math_mode
        rows, inner = a.shape
        columns = b.shape[1]
        operation_a, leading_a = _layout(a)
        operation_b, leading_b = _layout(b)
        name, one, zero = self.gemms[out.dtype]
        self._call(
            name,
            self.handle,
            _int(operation_b),
            _int(operation_a),
            _int(columns),
            _int(rows),
            _int(inner),
            ctypes.byref(one),
            _pointer(b.data.ptr),
            _int(leading_b),
            _pointer(a.data.ptr),
            _int(leading_a),
            ctypes.byref(zero),
            _pointer(out.data.ptr),
            _int(columns),
        )


def _layout(array: Any) -> tuple[int, int]:
    """(operation, leading dimension) of a row-major operand in cuBLAS's column-major terms."""
    if array.flags.c_contiguous:
        return OPERATION_NONE, array.shape[1]
    if array.flags.f_contiguous:
        return OPERATION_TRANSPOSE, array.shape[0]
    raise ValueError(f"a matrix product operand must be C- or F-ordered, got strides {array.strides}")


@functools.cache
def device_resources(device_id: int) -> tuple[Any, Cublas]:
    """The capturing stream and the cuBLAS binding of CUDA device `device_id`, made once for every
    `fit` on it (a handle and a 32 MiB workspace per fit would cost each short fit of a grid search)."""
    import cupy
    from cupy_backends.cuda.libs import cublas

    with cupy.cuda.Device(device_id):
        stream = cupy.cuda.Stream(non_blocking=True)  # the legacy default stream cannot be captured
        workspace = cupy.empty(WORKSPACE_BYTES, dtype=np.uint8)
        expected = cublas.getVersion(cupy.cuda.device.get_cublas_handle())
        return stream, Cublas(cupys_cublas(cupy), stream.ptr, workspace, expected)


def capture_steps(training: GraphTarget, allow_tf32: bool) -> None:
    """Route `training`'s products through cuBLAS and its steps through captured graphs, on the
    current CUDA device."""
    import cupy

    try:
        stream, cublas = device_resources(cupy.cuda.Device().id)
    except (
        ImportError,
        OSError,
        AttributeError,
        RuntimeError,
    ) as error:  # no usable cuBLAS: CuPy's products, uncaptured
        LOG.warning("Model.fit(graph=True): cuBLAS could not be bound, the steps run eagerly: %s", error)
        return
    route_products(training, cublas, allow_tf32)
    replay_steps(training, cupy.cuda, stream)


def route_products(training: GraphTarget, cublas: Cublas, allow_tf32: bool) -> None:
    """The layers' products through `cublas`, on TF32 tensor cores if allowed; the sums computed as
    products with ones always in full precision."""
    training.matmul = cublas.tf32_matmul if allow_tf32 else cublas.matmul
    training.sum_product = cublas.matmul


def replay_steps(training: GraphTarget, cuda: Any, stream: Any) -> None:
    """Make `training` run each step, and each unit of several epochs, through a `GraphRunner` on
    `stream` (`cuda`: `cupy.cuda`, or a stand-in with the same stream, allocator and capture-mode
    names)."""
    training.run = GraphRunner(cuda, stream, training.run).run
    training.run_recorded = GraphRunner(cuda, stream, run_unit).run
    training.replayed = True


def run_unit(unit: Callable[[], None]) -> None:
    """Run a unit of work recorded as a whole (several epochs of steps)."""
    unit()


def refuse_allocation(size: int) -> Any:
    """An allocator for the duration of a capture: any allocation fails it."""
    raise AllocationInCapture(f"the step allocated {size} bytes of device memory while it was being captured")


class GraphRunner:
    """Runs a static step (or a unit of several epochs) eagerly the first time, captures it the
    second, replays it after."""

    def __init__(self, cuda: Any, stream: Any, run_eagerly: Callable[[Any], None]) -> None:
        self.cuda, self.stream, self.run_eagerly = cuda, stream, run_eagerly
        # None: capture failed, run eagerly. Weak: a step dropped by its training takes its graph along.
        self.graphs: weakref.WeakKeyDictionary[Hashable, Any] = weakref.WeakKeyDictionary()
        self.seen: weakref.WeakSet[Hashable] = weakref.WeakSet()

    def run(self, step: Hashable) -> None:
        current = self.cuda.get_current_stream()  # where the batch was gathered
        graph = self.graphs.get(step)
        if graph is not None:
            graph.launch(current)
            return
        self.stream.wait_event(current.record())
        with self.stream:
            if step in self.seen and step not in self.graphs:
                graph = self.graphs[step] = self._capture(step)
            if graph is None:
                self.run_eagerly(step)
            self.seen.add(step)
        current.wait_event(self.stream.record())
        if graph is not None:  # captured just now: recorded, not yet run
            graph.launch(current)

    def _capture(self, step: Hashable) -> Any:
        """The step's graph, or None (one warning) when it cannot be captured: the capture does not
        begin, the step fails inside it (an allocation, a host read, a refused call), or the
        graph does not end or instantiate."""
        try:
            self.stream.begin_capture(mode=self.cuda.runtime.streamCaptureModeGlobal)
        except Exception as error:
            return _not_captured(error)
        try:
            with self.cuda.using_allocator(refuse_allocation):
                self.run_eagerly(step)
        except Exception as error:
            with contextlib.suppress(Exception):  # the step's error is the one to report
                self.stream.end_capture()  # leaves capture mode; an invalidated capture raises here too
            return _not_captured(error)
        try:
            return self.stream.end_capture()
        except Exception as error:
            return _not_captured(error)


def _not_captured(error: Exception) -> None:
    LOG.warning("Model.fit(graph=True): the step could not be captured, it runs eagerly: %s", error)
