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
  N near-equal parts) to every step; an epoch has enough steps for every rank to use all its
  rows (`training_steps`), and a rank whose rows run out contributes nothing to the last steps.

At the start of `fit` the ranks compare their networks, dtypes, sample shapes, settings and
(replicated) a fingerprint of their data, then take rank 0's weights, optimizer state and
generators; Dropout layers then draw from a stream of their rank's own.

Failures: errors found before training (bad data on one rank) are shared, so every rank raises
(the failing rank its own error, the others `RankFailedError` naming it). During training the
loss, a divergence and Ctrl-C are agreed on at every step, so all ranks stop together; any other
error on one rank (a callback's too) prints that rank's message and aborts the whole job
(`MPI_Abort`), so no rank is left waiting in a collective; so does an uncaught exception before
the first fit, in a process an MPI launcher started (`abort_on_uncaught_errors`). `Model.save`
is collective: rank 0 writes, and every rank returns once the file is complete.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from chainrule.backend.arrays import to_host
from chainrule.engine.layers import Dropout
from chainrule.engine.parameter_store import ParameterStore
from chainrule.engine.validation import dense
from chainrule.errors import TrainingDivergedError

COLLECTIVE_SECONDS = 30  # the longest a rank waits for the others at a file operation


class RankFailedError(RuntimeError):
    """Another rank of a distributed run failed; the message names it and its error."""


class SingleProcess:
    """Training in this process alone: each hook is the identity."""

    rank = 0
    size = 1
    is_root = True
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGINT,)  # what asks training to stop after its step

    def start(self, model: Any, inputs: np.ndarray, targets: np.ndarray, batch_size: int | None, epochs: int) -> None:
        """Get ready to train `model` on these rows here for `epochs` epochs."""

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

    @contextlib.contextmanager
    def root_writes(self) -> Iterator[bool]:
        """Yields whether this process writes (rank 0); every process leaves only once the writing
        is done, and a failure there is raised on every process."""
        yield True


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

    # Open MPI's mpiexec answers Ctrl-C by killing the job (SIGTERM, then SIGKILL half a second
    # later) but forwards SIGUSR1 to every rank: `chainrule mpiexec` turns Ctrl-C into it.
    stop_signals = (signal.SIGINT, *([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else []))

    def __init__(self, sharded: bool = False) -> None:
        self.mpi = mpi_world()
        self.comm = self.mpi.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.sharded = sharded
        abort_on_uncaught_errors()

    def start(self, model: Any, inputs: np.ndarray, targets: np.ndarray, batch_size: int | None, epochs: int) -> None:
        with self.agreement():  # a mismatch is one error on every rank, before any collective of training
            if self.sharded and batch_size is not None and batch_size < self.size:
                raise ValueError(
                    f"distributed fit: batch_size={batch_size} gives some of the {self.size} processes no rows of "
                    "each batch; use at least one row per process"
                )
            self._require_same(model, inputs, targets, (batch_size, epochs))
        self._share_rank0_state(model)
        rows = self.comm.allgather(inputs.shape[0]) if self.sharded else [inputs.shape[0]] * self.size
        part = None if batch_size is None else self._part(batch_size)  # my rows of every full global batch
        self.share = None if part is None else part.stop - part.start
        self.steps = training_steps(rows, batch_size, self.size, self.sharded)

    def _require_same(self, model: Any, inputs: np.ndarray, targets: np.ndarray, settings: tuple) -> None:
        """Refuse ranks that hold different networks, dtypes or sample shapes, batch sizes or epochs,
        or (replicated) different data: each would train something else, or hang in a collective."""
        mine = {
            "batch_size and epochs": settings,
            "network": [
                (type(layer).__name__, [tuple(np.shape(array)) for array in layer.parameters().values()])
                for layer in model.layers
            ],
            "dtype and sample shape": (str(inputs.dtype), tuple(inputs.shape[1:]), tuple(targets.shape[1:])),
        }
        if not self.sharded:
            mine["data (replicated: every rank passes the same rows)"] = (inputs.shape[0], fingerprint(inputs, targets))
        everyone = self.comm.allgather(mine)
        for what in mine:
            differing = [rank for rank, theirs in enumerate(everyone) if theirs[what] != everyone[0][what]]
            if differing:
                raise ValueError(
                    f"distributed fit: rank {differing[0]} of {self.size} has another {what} than rank 0 "
                    f"({everyone[differing[0]][what]!r:.200} against {everyone[0][what]!r:.200})"
                )

    def _share_rank0_state(self, model: Any) -> None:
        """Every rank starts from rank 0's weights, optimizer state and generators (a rank that
        alone resumed from a file must not train a model of its own); each Dropout layer's
        generator is then moved to a stream of its rank's, so masks differ across ranks and repeat
        with the seed."""
        for array in model.parameter_store().arrays():
            self.comm.Bcast(array, root=0)
        optimizer = model.optimizer
        state = self.comm.bcast(
            (optimizer.iterations, {key: to_host(value) for key, value in optimizer.get_state(model.layers).items()})
            if self.is_root
            else None,
            root=0,
        )
        if not self.is_root:
            optimizer.set_state(model.layers, state[1], state[0])
        generators = [model.rng, *(layer.rng for layer in model.layers if getattr(layer, "rng", None) is not None)]
        unique = list({id(generator): generator for generator in generators}.values())
        states = self.comm.bcast([generator.bit_generator.state for generator in unique], root=0)
        for generator, state_of_root in zip(unique, states, strict=True):
            generator.bit_generator.state = state_of_root
        for layer in model.layers:
            if isinstance(layer, Dropout) and self.rank:
                stream = cast(np.random.PCG64, layer.rng.bit_generator)  # default_rng's, as every layer's
                layer.rng = np.random.Generator(stream.jumped(self.rank))

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
    def root_writes(self) -> Iterator[bool]:
        error: Exception | None = None
        try:
            yield self.is_root
        except Exception as raised:
            error = raised
        # Every rank waits for rank 0's file, but never forever: a rank that never calls this
        # (`if rank == 0: model.save(...)`) gets an error instead of a hang.
        failed = np.array([0 if error is None else self.rank + 1], dtype=np.int64)
        request = self.comm.Iallreduce(self.mpi.IN_PLACE, failed, op=self.mpi.MAX)
        deadline = time.monotonic() + COLLECTIVE_SECONDS
        while not request.Test():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"rank {self.rank} of {self.size}: not every rank reached the file operation within "
                    f"{COLLECTIVE_SECONDS} s; after a distributed fit, call save on every rank (rank 0 writes the file)"
                )
            time.sleep(0.001)
        if error is not None:
            raise error
        if failed[0]:
            raise RankFailedError(f"rank {failed[0] - 1} of {self.size} failed to write the file")

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


@functools.lru_cache(maxsize=1)
def abort_on_uncaught_errors() -> None:
    """An exception that nothing catches, on any rank, prints its traceback and then stops every
    rank (`MPI_Abort`): the others would otherwise wait in their next collective forever, and
    the failing rank in `MPI_Finalize` as it exits. Installed when chainrule is imported in a
    process that an MPI launcher started among several (so it covers the code before the first
    fit), and by the first distributed fit otherwise; it acts only once MPI is initialised."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, traceback: Any) -> None:
        previous(kind, value, traceback)
        mpi = sys.modules.get("mpi4py.MPI")  # never imported here: that would start MPI
        if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
            return
        comm = mpi.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
        print(f"chainrule: rank {rank} of {size} raised {kind.__name__}; stopping every rank", file=sys.stderr)
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = hook


def launched_among_several() -> bool:
    """Whether an MPI launcher started this process as one of several (Open MPI's mpiexec sets
    OMPI_COMM_WORLD_SIZE; MPICH's and Intel MPI's set PMI_SIZE)."""
    for variable in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        with contextlib.suppress(ValueError):
            if int(os.environ.get(variable, "1")) > 1:
                return True
    return False


if launched_among_several():
    abort_on_uncaught_errors()


def training_steps(rows: list[int], batch_size: int | None, size: int, sharded: bool) -> int:
    """Steps of an epoch: one for a full batch; replicated, ceil(rows / batch_size); sharded,
    enough steps for every rank to use all its rows at its share of each batch (a rank whose
    rows run out contributes nothing to the last steps), so every row trains each epoch."""
    if batch_size is None:
        return 1
    if not sharded:
        return math.ceil(rows[0] / batch_size)
    parts = [shard_rows(batch_size, rank, size) for rank in range(size)]
    return max(math.ceil(total / (part.stop - part.start)) for total, part in zip(rows, parts, strict=True))


def fingerprint(inputs: np.ndarray, targets: np.ndarray) -> float:
    """A cheap summary of the data (sums of up to 1,000 evenly spaced rows, weighted by position):
    equal on every rank that passes the same rows, and almost surely not otherwise."""
    rows = np.linspace(0, inputs.shape[0] - 1, min(inputs.shape[0], 1000)).astype(np.int64)
    weights = np.arange(1, len(rows) + 1, dtype=np.float64)
    flat = [to_host(dense(array[rows])).reshape(len(rows), -1).astype(np.float64) for array in (inputs, targets)]
    return float(sum(weights @ np.nan_to_num(part).sum(axis=1) for part in flat))


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
