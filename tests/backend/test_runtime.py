"""The runtime around training: BLAS threads, Ctrl-C and NumPy's error state."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from chainrule.backend.runtime import SMALL_MATMUL_WORK, blas_threads, quiet_float_errors, training_guard


def blas_thread_counts():
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_small_products_run_blas_on_one_thread_and_large_ones_keep_the_default():
    default = blas_thread_counts()
    with blas_threads(SMALL_MATMUL_WORK - 1):
        assert blas_thread_counts() == {1}
    with blas_threads(SMALL_MATMUL_WORK):
        assert blas_thread_counts() == default
    assert blas_thread_counts() == default


def test_ctrl_c_once_sets_the_flag_twice_interrupts_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with training_guard(SMALL_MATMUL_WORK) as interruption:
        os.kill(os.getpid(), signal.SIGINT)
        assert interruption.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_each_stop_signal_counts_as_a_press_and_every_handler_is_restored():
    """Under MPI, SIGUSR1 (which mpiexec forwards to every rank) asks to stop as Ctrl-C does."""
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGUSR1)}
    with training_guard(SMALL_MATMUL_WORK, (signal.SIGINT, signal.SIGUSR1)) as interruption:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert interruption.requested
    assert {number: signal.getsignal(number) for number in before} == before


def test_float_errors_pass_silently_inside_and_warn_again_outside():
    with quiet_float_errors():
        assert np.isinf(np.float32(3e38) * np.float32(10))
    with pytest.warns(RuntimeWarning, match="overflow"):
        np.float32(3e38) * np.float32(10)


DOUBLE_SIGINT = """
RUNS = 50
import os, signal, threading, time, json
import numpy as np
import chainrule as cr
from threadpoolctl import threadpool_info

def blas():
    # each BLAS library's thread count, by file (compiled kernels may load another BLAS later)
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

X, y = cr.datasets.spiral_data(20, 3, seed=0)
# Load the compiled kernels (extra `fast`) first: a press while Numba compiles surfaces as a
# SystemError from inside Numba, not as KeyboardInterrupt (a known limit, noted in the documentation's Speed page).
warm = cr.Model(seed=0).add(cr.Dense(2, 8)).add(cr.ReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())
warm.compile(loss="categorical_crossentropy", optimizer="adam").fit(X, y, epochs=1, verbose=0)
default_blas, broken = blas(), []
class Started(cr.callbacks.Callback):
    def __init__(self):
        self.event = threading.Event()

    def on_epoch_begin(self, epoch):
        self.event.set()


for run in range(RUNS):
    model = cr.Model(seed=run).add(cr.Dense(2, 8)).add(cr.ReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    started = Started()

    def press_twice():
        started.event.wait()  # the presses land while fit runs (its handler is installed by then)
        time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.000005 * (run % 50))  # from back to back to 250 us apart
        os.kill(os.getpid(), signal.SIGINT)

    presses = threading.Thread(target=press_twice)
    try:
        presses.start()
        model.fit(X, y, epochs=100000, verbose=0, callbacks=[started])
        presses.join()
        time.sleep(0.02)  # a second press that reached the restored handler lands here
    except KeyboardInterrupt:
        presses.join()
    threads = blas()
    for library, count in threads.items():
        default_blas.setdefault(library, count)  # first seen outside fit: its default
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler or threads != default_blas:
        broken.append(run)
print(json.dumps(broken))
"""


def test_two_ctrl_c_presses_microseconds_apart_restore_the_handler_and_blas_every_time():
    import json
    import os
    import subprocess
    import sys

    # The NumPy paths: a press inside a Numba-compiled call surfaces as SystemError (docs, Speed).
    environment = {**os.environ, "CHAINRULE_COMPILED": "0"}
    command = [sys.executable, "-c", DOUBLE_SIGINT]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout) == []


def test_a_blas_library_loaded_after_the_first_limit_is_limited_too():
    """SciPy brings its own OpenBLAS: imported after a first fit, its threads are limited as well."""
    script = (
        "from threadpoolctl import threadpool_info\n"
        "from chainrule.backend.runtime import SMALL_MATMUL_WORK, blas_threads\n"
        "with blas_threads(SMALL_MATMUL_WORK - 1):\n"
        "    pass\n"
        "import scipy.linalg\n"
        "libraries = {pool['filepath'] for pool in threadpool_info() if pool['user_api'] == 'blas'}\n"
        "with blas_threads(SMALL_MATMUL_WORK - 1):\n"
        "    threads = {pool['num_threads'] for pool in threadpool_info() if pool['user_api'] == 'blas'}\n"
        "print(len(libraries), sorted(threads))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    libraries, threads = completed.stdout.split(" ", 1)
    if int(libraries) < 2:
        pytest.skip("SciPy shares NumPy's BLAS here: no second library to limit")
    assert threads.strip() == "[1]"
