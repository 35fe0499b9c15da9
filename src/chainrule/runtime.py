"""The runtime around a training run: BLAS threads, Ctrl-C, and NumPy's floating-point error state.

These are the process-wide settings a step depends on, kept in one place so that the layers'
arithmetic never has to think about them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

SMALL_MATMUL_WORK = 1 << 20  # multiply-adds of the largest product below which BLAS runs on one thread


def quiet_float_errors() -> contextlib.AbstractContextManager:
    """Let overflow, invalid values and division by zero pass silently: a diverging loss is
    detected by value (the training loop checks it), not by warnings from deep inside a step."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def blas_threads(largest_matmul_work: int) -> contextlib.AbstractContextManager:
    """One BLAS thread when every matrix product is small: handing it to more threads costs
    more than they save (about 20% of a step on the book's spiral network)."""
    if largest_matmul_work >= SMALL_MATMUL_WORK:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class Interruption:
    """Whether Ctrl-C asked training to stop after the current step."""

    requested = False


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Interruption]:
    """Turn Ctrl-C into 'stop after this step' (a second Ctrl-C interrupts at once)."""
    interruption = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield interruption
        return

    def request_stop(signum: int, frame: Any) -> None:
        if interruption.requested:
            raise KeyboardInterrupt
        interruption.requested = True

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield interruption
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def training_guard(largest_matmul_work: int) -> Iterator[Interruption]:
    """All three for a training run; yields the Ctrl-C flag."""
    with deferred_interrupt() as interruption, blas_threads(largest_matmul_work), quiet_float_errors():
        yield interruption
