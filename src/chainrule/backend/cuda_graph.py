"""CUDA graphs for `fit(graph=True)` on a GPU: each static training step captured once, then replayed.

A static step (`chainrule.training.static_step`) allocates nothing and reads nothing back, so CuPy's
stream capture can record it whole. CuPy refuses its own cuBLAS calls during a capture (CuPy
issue #6290) while cuBLAS itself captures fine, so the step's matrix products go through
`Cublas`, a minimal ctypes binding of the cuBLAS library CuPy loads, bound to the capturing
stream and given its workspace beforehand (nothing may be allocated inside the capture).

For each batch size the first step runs eagerly (CuPy compiles its kernels then), the second is
captured and launched, and every later one is a replay. If a capture fails, that batch size
runs eagerly from then on and the log says why.
"""

from __future__ import annotations

import ctypes
import logging
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import numpy as np

LOG = logging.getLogger("chainrule")
WORKSPACE_BYTES = 32 << 20  # cuBLAS's own scratch space, allocated before any capture
OPERATION_NONE, OPERATION_TRANSPOSE = 0, 1  # cublasOperation_t
TF32_TENSOR_OP_MATH = 3  # cublasMath_t: CUBLAS_TF32_TENSOR_OP_MATH


class GraphTarget(Protocol):
    """What capture needs of a static training: the product its steps call, and how a step runs
    (both replaced here). A step is any hashable object that `run` takes."""

    matmul: Callable[[Any, Any, Any], object]
    run: Callable[[Any], None]


class CublasError(RuntimeError):
    """A cuBLAS call returned a status other than CUBLAS_STATUS_SUCCESS."""


class Cublas:
    """cuBLAS's GEMM for row-major CuPy arrays, on one stream, called through ctypes."""

    def __init__(self, cupy: Any, stream: Any, allow_tf32: bool) -> None:
        from cuda.pathfinder import load_nvidia_dynamic_lib  # installed with CuPy 14

        self.library = ctypes.CDLL(load_nvidia_dynamic_lib("cublas").abs_path)
        self.handle = ctypes.c_void_p()
        self._call("cublasCreate_v2", ctypes.byref(self.handle))
        weakref.finalize(self, self.library.cublasDestroy_v2, self.handle)
        self._call("cublasSetStream_v2", self.handle, ctypes.c_void_p(stream.ptr))
        self.workspace = cupy.empty(WORKSPACE_BYTES, dtype=np.uint8)
        self._call(
            "cublasSetWorkspace_v2",
            self.handle,
            ctypes.c_void_p(self.workspace.data.ptr),
            ctypes.c_size_t(WORKSPACE_BYTES),
        )
        if allow_tf32:
            self._call("cublasSetMathMode", self.handle, ctypes.c_int(TF32_TENSOR_OP_MATH))
        # alpha = 1 and beta = 0 stay alive here: cuBLAS reads them through these pointers.
        self.gemms = {
            np.dtype(np.float32): ("cublasSgemm_v2", ctypes.c_float(1.0), ctypes.c_float(0.0)),
            np.dtype(np.float64): ("cublasDgemm_v2", ctypes.c_double(1.0), ctypes.c_double(0.0)),
        }

    def _call(self, name: str, *arguments: Any) -> None:
        status = getattr(self.library, name)(*arguments)
        if status != 0:
            raise CublasError(f"{name} returned cuBLAS status {status}")

    def matmul(self, a: Any, b: Any, out: Any) -> None:
        """out (m, n) = a (m, k) @ b (k, n); a and b C- or F-ordered, out C-ordered.

        cuBLAS is column-major: a row-major array is its transpose there, so the call computes
        out^T = b^T a^T, with a transposed operand for each F-ordered (transposed view) input.
        """
        rows, inner = a.shape
        columns = b.shape[1]
        operation_a, leading_a = _layout(a)
        operation_b, leading_b = _layout(b)
        name, one, zero = self.gemms[out.dtype]
        self._call(
            name,
            self.handle,
            ctypes.c_int(operation_b),
            ctypes.c_int(operation_a),
            ctypes.c_int(columns),
            ctypes.c_int(rows),
            ctypes.c_int(inner),
            ctypes.byref(one),
            ctypes.c_void_p(b.data.ptr),
            ctypes.c_int(leading_b),
            ctypes.c_void_p(a.data.ptr),
            ctypes.c_int(leading_a),
            ctypes.byref(zero),
            ctypes.c_void_p(out.data.ptr),
            ctypes.c_int(columns),
        )


def _layout(array: Any) -> tuple[int, int]:
    """(operation, leading dimension) of a row-major operand in cuBLAS's column-major terms."""
    if array.flags.c_contiguous:
        return OPERATION_NONE, array.shape[1]
    if array.flags.f_contiguous:
        return OPERATION_TRANSPOSE, array.shape[0]
    raise ValueError(f"a matrix product operand must be C- or F-ordered, got strides {array.strides}")


def capture_steps(training: GraphTarget, allow_tf32: bool) -> None:
    """Route `training`'s products through cuBLAS and its steps through captured graphs."""
    import cupy

    stream = cupy.cuda.Stream(non_blocking=True)  # the legacy default stream cannot be captured
    try:
        cublas = Cublas(cupy, stream, allow_tf32)
    except (ImportError, OSError, RuntimeError) as error:  # no cuBLAS library to bind: CuPy's products, uncaptured
        LOG.warning("Model.fit(graph=True): cuBLAS could not be loaded, the steps run eagerly: %s", error)
        return
    training.matmul = cublas.matmul
    training.run = GraphRunner(cupy, stream, training.run).run


class GraphRunner:
    """Runs a static step eagerly the first time, captures it the second, replays it after."""

    def __init__(self, cupy: Any, stream: Any, run_eagerly: Callable[[Any], None]) -> None:
        self.cupy, self.stream, self.run_eagerly = cupy, stream, run_eagerly
        self.graphs: dict[Hashable, Any] = {}  # None: capture failed, run eagerly
        self.seen: set[Hashable] = set()

    def run(self, step: Hashable) -> None:
        current = self.cupy.cuda.get_current_stream()  # where the batch was gathered
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
        """The step's graph, or None (logged) when it cannot be captured."""
        self.stream.begin_capture()
        try:
            self.run_eagerly(step)
        except Exception as error:
            self.stream.end_capture()
            LOG.warning("Model.fit(graph=True): the step could not be captured, it runs eagerly: %s", error)
            return None
        return self.stream.end_capture()
