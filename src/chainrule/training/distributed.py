"""Data-parallel training: one model trained by several processes under MPI (extra `mpi`).

`Model.fit(..., distributed="mpi")` run under `mpiexec -n N` gives each process (rank) a share
of every mini-batch. The ranks start from rank 0's weights, compute the gradient of their
share, and one in-place `Allreduce` of the flat gradient buffer (each rank's gradient weighted
by its share of the batch) gives every rank the gradient of the whole batch, so every rank takes
the same optimizer step and holds the same model and the same History.

How a global batch is formed:

- Replicated data (every rank passes the same X, y): rank 0 draws the epoch's order from the
  model's generator and broadcasts it; each batch of `batch_size` rows of that order is cut into
  N consecutive parts, one per rank.
- Sharded data (`sharded=True`, each rank passes its own rows): each rank shuffles its own rows
  with the model's generator and contributes its share of `batch_size` (`batch_size` split into
  N near-equal parts) to every step; an epoch has ceil(total rows / batch_size) steps, and a
  rank whose rows run out contributes nothing to the last steps.

Failures: errors found before training (bad data on one rank) are shared, so every rank raises
(the failing rank its own error, the others `RankFailedError` naming it). During training the
loss, a divergence and Ctrl-C are agreed on at every step, so all ranks stop together; any other
error on one rank prints that rank's message and aborts the whole job (`MPI_Abort`), so no rank
is left waiting in a collective.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.engine.parameter_store import ParameterStore
from chainrule.errors import TrainingDivergedError


class RankFailedError(RuntimeError):
    """Another rank of a distributed run failed; the message names it and its error."""


class SingleProcess:
    """Training in this process alone: each hook is the identity."""

    rank = 0
    size = 1
    is_root = True

    def start(self, store: ParameterStore, n_samples: int, batch_size: int | None) -> None:
        """Get ready to train on `n_samples` rows here."""

    def epoch_order(self, rng: np.random.Generator, n_samples: int, shuffle: bool) -> np.ndarray | None:
        """The epoch's order of the rows (None: as stored)."""
        return rng.permutation(n_samples) if shuffle else None

    def batches(self, n_samples: int, batch_size: int | None) -> Iterator[slice]:
        """This process's rows of each step, as positions in the epoch's order."""
        size = n_samples if batch_size is None else batch_size
        for start in range(0, n_samples, size):
            yield slice(start, start + size)

    def agree(self, loss_sum: float, n_rows: int, interrupted: bool) -> tuple[float, int, bool]:
        """(summed loss, rows, interrupted) of the step over every process."""
        return loss_sum, n_rows, interrupted

    def combine_gradients(self, store: ParameterStore, share: float) -> None:
        """Turn this process's gradient (weighted by `share`, its part of the rows) into the batch's."""

    def reduce_totals(self, totals: dict[str, float], n_rows: int) -> tuple[dict[str, float], int]:
        """Epoch totals (summed losses and metrics) and row count over every process."""
        return totals, n_rows

    def validation_rows(self, n_samples: int) -> slice:
        """The rows of the validation data this process evaluates."""
        return slice(0, n_samples)

    def any(self, flag: bool) -> bool:
        """Whether `flag` holds on any process."""
        return flag

    @contextlib.contextmanager
    def agreement(self) -> Iterator[None]:
        """Errors raised inside are shared with every process before anyone goes on."""
        yield

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Errors of one process during training stop every process."""
        yield


SINGLE_PROCESS = SingleProcess()


@functools.lru_cache(maxsize=1)
def mpi_world() -> Any:
    """mpi4py's COMM_WORLD, or an ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "distributed='mpi' needs mpi4py and an MPI library: pip install 'chainrule[mpi]', then run the "
            "script under mpiexec -n N"
        ) from error
    return MPI


class MpiDataParallel(SingleProcess):
    """The ranks of MPI's COMM_WORLD training one model (see the module's docstring)."""

    def __init__(self, sharded: bool = False) -> None:
        self.mpi = mpi_world()
        self.comm = self.mpi.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.sharded = sharded

    def start(self, store: ParameterStore, n_samples: int, batch_size: int | None) -> None:
        for array in store.arrays():  # every rank starts from rank 0's weights
            self.comm.Bcast(array, root=0)
        total = self._sum(n_samples) if self.sharded else n_samples
        self.steps = 1 if batch_size is None else math.ceil(total / batch_size)
        part = None if batch_size is None else self._part(batch_size)  # my rows of every full global batch
        self.share = None if part is None else part.stop - part.start

    def epoch_order(self, rng: np.random.Generator, n_samples: int, shuffle: bool) -> np.ndarray | None:
        if not shuffle or self.sharded:
            return rng.permutation(n_samples) if shuffle else None
        order = rng.permutation(n_samples) if self.is_root else np.empty(n_samples, dtype=np.int64)
        self.comm.Bcast(order, root=0)
        return order

    def batches(self, n_samples: int, batch_size: int | None) -> Iterator[slice]:
        if self.sharded:  # my share of every step, from my own rows (all of them in a full batch)
            share = n_samples if self.share is None else self.share
            for step in range(self.steps):
                yield slice(min(step * share, n_samples), min((step + 1) * share, n_samples))
            return
        for rows in super().batches(n_samples, batch_size):  # my part of each global batch
            part = self._part(min(rows.stop, n_samples) - rows.start)
            yield slice(rows.start + part.start, rows.start + part.stop)

    def agree(self, loss_sum: float, n_rows: int, interrupted: bool) -> tuple[float, int, bool]:
        status = np.array([loss_sum, n_rows, float(interrupted)])
        self.comm.Allreduce(self.mpi.IN_PLACE, status, op=self.mpi.SUM)
        return float(status[0]), int(status[1]), bool(status[2])

    def combine_gradients(self, store: ParameterStore, share: float) -> None:
        for layer in (None, *store.loose_layers):
            gradients = [store.gradients] if layer is None else list(layer.gradients().values())
            for gradient in gradients:
                if share:
                    gradient *= share
                else:
                    gradient.fill(0)  # no rows this step: stale values (even NaN) must not count
                self.comm.Allreduce(self.mpi.IN_PLACE, gradient, op=self.mpi.SUM)

    def reduce_totals(self, totals: dict[str, float], n_rows: int) -> tuple[dict[str, float], int]:
        names = sorted(totals)
        values = np.array([totals[name] for name in names] + [n_rows], dtype=np.float64)
        self.comm.Allreduce(self.mpi.IN_PLACE, values, op=self.mpi.SUM)
        return dict(zip(names, values[:-1].tolist(), strict=True)), int(values[-1])

    def validation_rows(self, n_samples: int) -> slice:
        return slice(0, n_samples) if self.sharded else self._part(n_samples)

    def any(self, flag: bool) -> bool:
        return self._sum(int(flag)) > 0

    @contextlib.contextmanager
    def agreement(self) -> Iterator[None]:
        error: Exception | None = None
        try:
            yield
        except Exception as raised:
            error = raised
        messages = self.comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
        failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
        if error is not None:
            raise error
        if failed:
            rank, message = failed[0]
            raise RankFailedError(f"rank {rank} of {self.size} failed: {message}")

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except TrainingDivergedError:  # raised by every rank at the same step
            raise
        except BaseException as error:
            print(
                f"chainrule: rank {self.rank} of {self.size} failed during training: {type(error).__name__}: {error}; "
                "stopping every rank",
                file=sys.stderr,
                flush=True,
            )
            self.comm.Abort(1)

    def _part(self, n_rows: int) -> slice:
        return shard_rows(n_rows, self.rank, self.size)

    def _sum(self, value: int) -> int:
        total = np.array([value], dtype=np.int64)
        self.comm.Allreduce(self.mpi.IN_PLACE, total, op=self.mpi.SUM)
        return int(total[0])


def shard_rows(n_rows: int, rank: int, size: int) -> slice:
    """Part `rank` of `n_rows` rows cut into `size` consecutive, near-equal parts."""
    base, extra = divmod(n_rows, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def data_parallel(distributed: str | None, sharded: bool, owner: str) -> SingleProcess:
    """The strategy `fit(distributed=..., sharded=...)` asks for."""
    if distributed is None:
        if sharded:
            raise ValueError(f"{owner}: sharded=True needs distributed='mpi'")
        return SINGLE_PROCESS
    if distributed != "mpi":
        raise ValueError(f"{owner}: distributed must be None or 'mpi', got {distributed!r}")
    return MpiDataParallel(sharded=bool(sharded))
