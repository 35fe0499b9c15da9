"""The CUDA graph machinery's own logic, checked on the CPU with stand-ins for CuPy and cuBLAS.

`HostCublas` is cuBLAS's C interface as far as chainrule calls it: C function pointers with the
argument types `cuda_graph.SIGNATURES` declares (so a call that passes the wrong types fails as
it would against the real library), over a column-major GEMM written with NumPy that reads the
same memory through the same pointers, leading dimensions and transpose flags: a wrong flag or
dimension gives a wrong product. It also keeps the handle's math mode as cuBLAS does.
`GraphRunner` must run a step eagerly once, capture it the second time and replay it after,
and fall back to eager steps, with one warning, whenever a capture fails. On a GPU,
`tests/backend/test_gpu.py` and `benchmarks/gpu_verify.py` check the real thing.
"""

import contextlib
import ctypes
import logging
from types import SimpleNamespace

import numpy as np
import pytest

import chainrule as cr
from chainrule.backend import arrays, cuda_graph
from chainrule.backend import kernels as compiled_kernels


class HostMatrix:
    """A NumPy array presented as CuPy presents a device array: shape, flags, dtype, data.ptr."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape, self.flags, self.dtype, self.strides = array.shape, array.flags, array.dtype, array.strides
        self.nbytes = array.nbytes
        self.data = SimpleNamespace(ptr=array.ctypes.data)


def column_major(pointer: int, operation: int, rows: int, columns: int, leading: int, ctype) -> np.ndarray:
    """op(X) of shape (rows, columns) from column-major memory, as cuBLAS reads it."""
    stored_rows, stored_columns = (rows, columns) if operation == cuda_graph.OPERATION_NONE else (columns, rows)
    size = (stored_columns - 1) * leading + stored_rows
    flat = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctype)), shape=(size,))
    itemsize = flat.itemsize
    stored = np.lib.stride_tricks.as_strided(flat, (stored_rows, stored_columns), (itemsize, leading * itemsize))
    return stored if operation == cuda_graph.OPERATION_NONE else stored.T


class HostCublas:
    """The cuBLAS functions chainrule calls, typed as declared, emulated on the host. Records the
    math mode of each GEMM with its operands."""

    HANDLE = 0x5EED

    def __init__(self, version: int = 130_100) -> None:
        self.version, self.math_mode = version, cuda_graph.DEFAULT_MATH
        self.stream = self.workspace = None
        self.gemms: list[tuple[int, np.ndarray, np.ndarray]] = []
        python = {
            "cublasCreate_v2": self.create,
            "cublasDestroy_v2": lambda handle: 0,
            "cublasGetVersion_v2": self.get_version,
            "cublasSetStream_v2": lambda handle, stream: self.set("stream", stream),
            "cublasSetWorkspace_v2": lambda handle, pointer, size: self.set("workspace", (pointer, size)),
            "cublasSetMathMode": lambda handle, mode: self.set("math_mode", mode),
            "cublasGetMathMode": self.get_math_mode,
            "cublasSgemm_v2": self.gemm(ctypes.c_float),
            "cublasDgemm_v2": self.gemm(ctypes.c_double),
        }
        for name, argument_types in cuda_graph.SIGNATURES.items():
            setattr(self, name, ctypes.CFUNCTYPE(ctypes.c_int, *argument_types)(python[name]))

    def set(self, name: str, value) -> int:
        setattr(self, name, value)
        return 0

    def create(self, handle) -> int:
        handle[0] = self.HANDLE
        return 0

    def get_version(self, handle, version) -> int:
        version[0] = self.version
        return 0

    def get_math_mode(self, handle, mode) -> int:
        mode[0] = self.math_mode
        return 0

    def gemm(self, ctype):
        """cublas<t>gemm_v2 in NumPy: C = alpha op(A) op(B) + beta C, all column-major (C unread when beta is 0)."""

        def call(handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
            assert handle == self.HANDLE
            op_a = column_major(a, transa, m, k, lda, ctype)
            op_b = column_major(b, transb, k, n, ldb, ctype)
            out = column_major(c, cuda_graph.OPERATION_NONE, m, n, ldc, ctype)
            product = alpha[0] * (op_a @ op_b)
            out[...] = product if beta[0] == 0 else product + beta[0] * out  # beta 0: C is not read
            self.gemms.append((self.math_mode, op_a.copy(), op_b.copy()))
            return 0

        return call


def host_cublas(library: HostCublas | None = None, expected_version: int | None = None) -> cuda_graph.Cublas:
    workspace = HostMatrix(np.empty(64, np.uint8))
    return cuda_graph.Cublas(cuda_graph.declare(library or HostCublas()), 0xC0FFEE, workspace, expected_version)


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


def test_the_handle_is_bound_to_the_stream_and_workspace_and_tf32_is_asked_for_per_product():
    library = HostCublas()
    cublas = host_cublas(library)
    assert library.stream == 0xC0FFEE and library.workspace[1] == 64
    matrix = HostMatrix(np.ones((2, 2), np.float32))
    cublas.tf32_matmul(matrix, matrix, HostMatrix(np.empty((2, 2), np.float32)))
    assert cublas.read_math_mode() == cuda_graph.TF32_TENSOR_OP_MATH
    cublas.matmul(matrix, matrix, HostMatrix(np.empty((2, 2), np.float32)))
    assert cublas.read_math_mode() == cuda_graph.DEFAULT_MATH
    assert [mode for mode, _, _ in library.gemms] == [cuda_graph.TF32_TENSOR_OP_MATH, cuda_graph.DEFAULT_MATH]


def test_a_cublas_other_than_cupys_is_refused():
    with pytest.raises(cuda_graph.CublasError, match="version 120000, CuPy uses 130100"):
        host_cublas(HostCublas(version=120_000), expected_version=130_100)


def test_a_cublas_without_a_function_called_here_is_refused_when_bound():
    library = HostCublas()
    del library.cublasSetWorkspace_v2
    with pytest.raises(AttributeError):
        cuda_graph.declare(library)


def zeros_and_ones(matrix: np.ndarray) -> bool:
    return bool(np.isin(matrix, (0.0, 1.0)).all())


@pytest.mark.parametrize("allow_tf32", [True, False])
def test_only_the_layers_products_run_on_tf32_never_the_sums(allow_tf32, monkeypatch):
    """A static step's GEMMs through the binding: the softmax's normalisation, the loss and
    accuracy sums and the bias gradients (products with ones, counts of 0/1 values) in full
    precision, the layers' products on TF32 when allowed."""
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)
    library = HostCublas()
    cublas = host_cublas(library)

    def through_host_cublas(training, tf32):
        cuda_graph.route_products(training, cublas, tf32)
        for name in ("matmul", "sum_product"):
            product = getattr(training, name)
            setattr(training, name, lambda a, b, out, product=product: product(*map(HostMatrix, (a, b, out))))

    device = arrays.Device("host-cublas", np, prepare_graph=through_host_cublas)
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    model = cr.Model(seed=0, dtype=np.float32, device=device)
    model.add(cr.Dense(2, 8)).add(cr.ReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(X, y, epochs=2, verbose=0, graph=True, allow_tf32=allow_tf32)
    sums = [mode for mode, a, b in library.gemms if zeros_and_ones(a) or zeros_and_ones(b)]
    products = [mode for mode, a, b in library.gemms if not (zeros_and_ones(a) or zeros_and_ones(b))]
    assert len(products) == 2 * 5  # per step: two forward products, two weight gradients, one input gradient
    assert len(sums) >= 2 * 6
    assert set(sums) == {cuda_graph.DEFAULT_MATH}
    assert set(products) == {cuda_graph.TF32_TENSOR_OP_MATH if allow_tf32 else cuda_graph.DEFAULT_MATH}


class Stream:
    """Records what a CuPy stream is asked to do; a capture collects the steps run inside it.
    `failing`: where a capture fails ("begin", "end", or "instantiate")."""

    def __init__(self, log: list, failing: str | None = None) -> None:
        self.log, self.failing, self.captured, self.modes = log, failing, None, []

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        pass

    def record(self) -> str:
        return "event"

    def wait_event(self, event: str) -> None:
        pass

    def begin_capture(self, mode=None) -> None:
        if self.failing == "begin":
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: the stream is the legacy one")
        self.modes.append(mode)
        self.captured = []

    def end_capture(self) -> SimpleNamespace:
        steps, self.captured = self.captured, None
        if self.failing == "step":
            raise RuntimeError("cudaErrorStreamCaptureInvalidated")
        if self.failing == "instantiate":
            raise RuntimeError("cudaErrorInvalidValue: the graph does not instantiate")
        return SimpleNamespace(launch=lambda stream: self.log.extend(("replay", step) for step in steps))


class Step(str):
    """A batch size's step, by name: held weakly by the runner, as a static step is."""


FULL, LAST = Step("full"), Step("last")


def runner(failing: str | None = None) -> tuple[cuda_graph.GraphRunner, list, Stream]:
    log: list = []
    stream = Stream(log, failing)
    allocators: list = []

    @contextlib.contextmanager
    def using_allocator(allocator):
        allocators.append(allocator)
        try:
            yield
        finally:
            allocators.pop()

    cuda = SimpleNamespace(
        get_current_stream=lambda: stream,
        using_allocator=using_allocator,
        runtime=SimpleNamespace(streamCaptureModeGlobal="global"),
    )

    def run_eagerly(step: str) -> None:
        if stream.captured is None:
            log.append(("eager", step))
            return
        assert allocators == [cuda_graph.refuse_allocation]  # every allocation inside a capture fails it
        if failing == "step":
            allocators[-1](4096)
        stream.captured.append(step)

    return cuda_graph.GraphRunner(cuda, stream, run_eagerly), log, stream


def test_each_batch_size_runs_eagerly_once_then_is_captured_in_global_mode_and_replayed():
    graphs, log, stream = runner()
    for step in [FULL, FULL, LAST, FULL, LAST, LAST]:
        graphs.run(step)
    assert log == [
        ("eager", "full"),
        ("replay", "full"),
        ("eager", "last"),
        ("replay", "full"),
        ("replay", "last"),
        ("replay", "last"),
    ]
    assert stream.modes == ["global", "global"]


@pytest.mark.parametrize(
    "failing, reason",
    [
        ("begin", "cudaErrorStreamCaptureUnsupported"),
        ("step", "allocated 4096 bytes of device memory while it was being captured"),
        ("instantiate", "does not instantiate"),
    ],
)
def test_every_failed_capture_falls_back_to_eager_steps_with_one_warning(failing, reason, caplog):
    graphs, log, _ = runner(failing)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        for _ in range(4):
            graphs.run(FULL)
    assert log == [("eager", "full")] * 4
    assert len(caplog.records) == 1
    assert "could not be captured, it runs eagerly" in caplog.text and reason in caplog.text
