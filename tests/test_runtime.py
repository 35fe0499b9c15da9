"""The runtime around training: BLAS threads, Ctrl-C and NumPy's error state."""

import os
import signal

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from chainrule.runtime import SMALL_MATMUL_WORK, blas_threads, deferred_interrupt, quiet_float_errors


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
    with deferred_interrupt() as interruption:
        os.kill(os.getpid(), signal.SIGINT)
        assert interruption.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_float_errors_pass_silently_inside_and_warn_again_outside():
    with quiet_float_errors():
        assert np.isinf(np.float32(3e38) * np.float32(10))
    with pytest.warns(RuntimeWarning, match="overflow"):
        np.float32(3e38) * np.float32(10)  # noqa: B018
