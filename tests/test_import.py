"""`import chainrule`: NumPy and the standard library, nothing heavier until it is used."""

import subprocess
import sys

import pytest

OPTIONAL = ("numba", "llvmlite", "matplotlib", "tqdm", "sklearn", "scipy", "onnx", "onnxruntime", "cupy", "mpi4py")


def imported_after(code):
    """The optional libraries loaded once `code` has run in a fresh interpreter."""
    listing = f"import sys\n{code}\nprint(' '.join(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, timeout=300, check=True)
    return result.stdout.split()


def test_importing_chainrule_loads_no_optional_library():
    assert imported_after("import chainrule") == []


def test_explaining_and_checking_load_no_compiler():
    code = (
        "import numpy as np, chainrule as cr\n"
        "print(cr.explain.neuron([1.0, -2.0, 3.0], [-3.0, -1.0, 2.0], 1.0), cr.explain.network())\n"
        "model = cr.Model(seed=0, dtype=np.float64).add(cr.Dense(2, 4)).add(cr.Tanh()).add(cr.Dense(4, 3))\n"
        "model.add(cr.Softmax()).compile(loss='categorical_crossentropy', optimizer='sgd')\n"
        "assert model.gradcheck(np.ones((3, 2)), [0, 1, 2]).passed"
    )
    assert "numba" not in imported_after(code)


def test_the_compiler_is_loaded_when_a_kernel_first_runs():
    pytest.importorskip("numba", reason="the compiled kernels are the optional extra 'fast'")
    code = (
        "import numpy as np\n"
        "from chainrule.backend import kernels\n"
        "assert 'numba' not in sys.modules\n"
        "assert kernels.row_argmax(np.array([[0.0, 2.0, 1.0]])).tolist() == [1]"
    )
    assert "numba" in imported_after(code)
