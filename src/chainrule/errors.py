"""The exceptions any floor of chainrule may raise, kept below all of them."""

from __future__ import annotations


class DeviceUnavailableError(RuntimeError):
    """The device asked for cannot be used here (no CuPy, or no CUDA GPU)."""


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; the update that would have used it was not applied."""


class WorkerDiedError(RuntimeError):
    """A task on a cluster ended every worker that ran it (a crash, or running out of memory)."""
