"""The runtime around a training run: BLAS threads, Ctrl-C, and NumPy's floating-point error state.

These are the process-wide settings a step depends on, kept in one place so that the layers'
arithmetic never has to think about them.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

SMALL_MATMUL_WORK = 1 << 20  # multiply-adds of the largest product below which BLAS runs on one thread


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def quiet_float_errors() -> contextlib.AbstractContextManager:
    """Let overflow, invalid values and division by zero pass silently: a diverging loss is
    detected by value (the training loop checks it), not by warnings from deep inside a step."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def blas_controller() -> ThreadpoolController:
    """The thread pools of the BLAS libraries loaded, found again only after modules were imported
    (one may load another BLAS, as SciPy does): each search walks every library of the process
    (37% of a 32-row `partial_fit` when done per call)."""
    return _controller_for(len(sys.modules))


@functools.lru_cache(maxsize=1)
def _controller_for(modules_imported: int) -> ThreadpoolController:
    return ThreadpoolController()


def one_thread_limit() -> Any:
    """BLAS limited to one thread until the returned limiter's `restore_original_limits()`."""
    return blas_controller().limit(limits=1, user_api="blas")


def blas_threads(largest_matmul_work: int) -> contextlib.AbstractContextManager:
    """One BLAS thread when every matrix product is small: handing it to more threads costs
    more than they save (about 20% of a step on the book's spiral network)."""
    if not one_blas_thread(largest_matmul_work):
        return contextlib.nullcontext()
    return one_thread_limit()


def one_blas_thread(largest_matmul_work: int) -> bool:
    """Whether products this small run faster on one BLAS thread."""
    return largest_matmul_work < SMALL_MATMUL_WORK


class Interruption:
    """Ctrl-C during training: the first press asks to stop after the current step; a second
    press interrupts at once, or, while the runtime is being restored, right after that. Any of
    the run's stop signals counts as a press (under MPI also SIGUSR1, which mpiexec forwards)."""

    requested = False
    armed = False  # whether a second press may raise now
    pressed_again = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested and self.armed:
            raise KeyboardInterrupt
        self.pressed_again = self.requested
        self.requested = True


@contextlib.contextmanager
def signals_blocked(signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    """Hold back these signals (main thread, POSIX) while settings are set or restored, so a
    Ctrl-C at that moment arrives afterwards instead of leaving them half done."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def training_guard(
    largest_matmul_work: int, stop_signals: tuple[signal.Signals, ...] = (signal.SIGINT,)
) -> Iterator[Interruption]:
    """BLAS threads, Ctrl-C (and any other of `stop_signals`) and float errors for a training
    run; yields the Ctrl-C flag.

    The BLAS limit and the signal handlers are set and restored with the signals held back, and
    a press that arrives meanwhile never raises halfway: both are restored on every path,
    however close together the presses come, and a second press is honoured once they are.
    """
    interruption = Interruption()
    previous: dict[signal.Signals, Any] = {}
    limiter = None
    try:
        with signals_blocked(stop_signals):
            if threading.current_thread() is threading.main_thread():
                previous = {number: signal.signal(number, interruption.handle) for number in stop_signals}
            if one_blas_thread(largest_matmul_work):
                limiter = one_thread_limit()
        interruption.armed = True
        with quiet_float_errors():
            yield interruption
    finally:
        interruption.armed = False
        with signals_blocked(stop_signals):
            try:
                if limiter is not None:
                    limiter.restore_original_limits()
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)
    if interruption.pressed_again:
        raise KeyboardInterrupt
