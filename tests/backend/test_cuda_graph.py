"""The CUDA graph machinery's own logic, checked on the CPU with stand-ins for CuPy and cuBLAS.

`Cublas.matmul` turns row-major products into cuBLAS's column-major GEMM calls: here a
column-major GEMM written with NumPy reads the same memory through the same pointers, leading
dimensions and transpose flags, so a wrong flag or dimension gives a wrong product.
`GraphRunner` must run a step eagerly once, capture it the second time and replay it after,
and fall back to eager steps (logged) when a capture fails. On a GPU, `tests/backend/test_gpu.py`
checks the real thing.
"""

import ctypes
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from chainrule.backend import cuda_graph


class HostMatrix:
    """A NumPy array presented as CuPy presents a device array: shape, flags, dtype, data.ptr."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape, self.flags, self.dtype, self.strides = array.shape, array.flags, array.dtype, array.strides
        self.data = SimpleNamespace(ptr=array.ctypes.data)


def column_major(pointer: int, operation: int, rows: int, columns: int, leading: int, ctype) -> np.ndarray:
    """op(X) of shape (rows, columns) from column-major memory, as cuBLAS reads it."""
    stored_rows, stored_columns = (rows, columns) if operation == cuda_graph.OPERATION_NONE else (columns, rows)
    size = (stored_columns - 1) * leading + stored_rows
    flat = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctype)), shape=(size,))
    itemsize = flat.itemsize
    stored = np.lib.stride_tricks.as_strided(flat, (stored_rows, stored_columns), (itemsize, leading * itemsize))
    return stored if operation == cuda_graph.OPERATION_NONE else stored.T


def numpy_gemm(ctype):
    """cublas<t>gemm_v2 in NumPy: C = alpha op(A) op(B) + beta C, all column-major (C unread when beta is 0)."""

    def gemm(handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        m, n, k = m.value, n.value, k.value
        op_a = column_major(a.value, transa.value, m, k, lda.value, ctype)
        op_b = column_major(b.value, transb.value, k, n, ldb.value, ctype)
        out = column_major(c.value, cuda_graph.OPERATION_NONE, m, n, ldc.value, ctype)
        product = alpha._obj.value * (op_a @ op_b)
        out[...] = product if beta._obj.value == 0 else product + beta._obj.value * out  # beta 0: C is not read
        return 0

    return gemm


def host_cublas() -> cuda_graph.Cublas:
    cublas = object.__new__(cuda_graph.Cublas)
    cublas.library = SimpleNamespace(
        cublasSgemm_v2=numpy_gemm(ctypes.c_float), cublasDgemm_v2=numpy_gemm(ctypes.c_double)
    )
    cublas.handle = ctypes.c_void_p()
    cublas.gemms = {
        np.dtype(np.float32): ("cublasSgemm_v2", ctypes.c_float(1.0), ctypes.c_float(0.0)),
        np.dtype(np.float64): ("cublasDgemm_v2", ctypes.c_double(1.0), ctypes.c_double(0.0)),
    }
    return cublas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_order", ["C", "F"])
@pytest.mark.parametrize("b_order", ["C", "F"])
@pytest.mark.parametrize("shape", [(5, 3, 4), (1, 6, 2), (7, 4, 1), (3, 1, 5)], ids=str)
def test_row_major_products_map_onto_column_major_gemm(dtype, a_order, b_order, shape):
    rows, inner, columns = shape
    rng = np.random.default_rng(0)
    a = np.asarray(rng.standard_normal((rows, inner)), dtype=dtype, order=a_order)
    b = np.asarray(rng.standard_normal((inner, columns)), dtype=dtype, order=b_order)
    out = np.full((rows, columns), np.nan, dtype=dtype)
    host_cublas().matmul(HostMatrix(a), HostMatrix(b), HostMatrix(out))
    np.testing.assert_allclose(out, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_a_strided_operand_is_refused():
    strided = HostMatrix(np.ones((4, 6))[:, ::2])
    with pytest.raises(ValueError, match="must be C- or F-ordered"):
        cuda_graph._layout(strided)


class Stream:
    """Records what a CuPy stream is asked to do; a capture collects the steps run inside it."""

    def __init__(self, log: list) -> None:
        self.log, self.captured = log, None

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        pass

    def record(self) -> str:
        return "event"

    def wait_event(self, event: str) -> None:
        pass

    def begin_capture(self) -> None:
        self.captured = []

    def end_capture(self) -> SimpleNamespace:
        steps, self.captured = self.captured, None
        return SimpleNamespace(launch=lambda stream: self.log.extend(("replay", step) for step in steps))


def runner(failing: bool = False) -> tuple[cuda_graph.GraphRunner, list]:
    log: list = []
    stream = Stream(log)
    cupy = SimpleNamespace(cuda=SimpleNamespace(get_current_stream=lambda: stream))

    def run_eagerly(step: str) -> None:
        if stream.captured is None:
            log.append(("eager", step))
        elif failing:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported")
        else:
            stream.captured.append(step)

    return cuda_graph.GraphRunner(cupy, stream, run_eagerly), log


def test_each_batch_size_runs_eagerly_once_then_is_captured_and_replayed():
    graphs, log = runner()
    for step in ["full", "full", "last", "full", "last", "last"]:
        graphs.run(step)
    assert log == [
        ("eager", "full"),
        ("replay", "full"),
        ("eager", "last"),
        ("replay", "full"),
        ("replay", "last"),
        ("replay", "last"),
    ]


def test_a_failed_capture_falls_back_to_eager_steps_and_says_why(caplog):
    graphs, log = runner(failing=True)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        for _ in range(4):
            graphs.run("full")
    assert log == [("eager", "full")] * 4
    assert "could not be captured, it runs eagerly: cudaErrorStreamCaptureUnsupported" in caplog.text
