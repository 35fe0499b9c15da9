"""The program tests/training/test_distributed.py runs under `mpiexec -n N`: one scenario per run.

    python tests/mpi_worker.py SCENARIO OUT_FOLDER

Every rank writes what it ended with to OUT_FOLDER/rank<r>.npz (the test's own record; the
library writes from rank 0 alone).
"""

import contextlib
import os
import signal
import sys
from pathlib import Path

import numpy as np

import chainrule as cr


def network(seed=0):
    model = cr.Model(seed=seed, dtype=np.float64)
    model.add(cr.Dense(2, 16)).add(cr.ReLU()).add(cr.Dense(16, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))


def convolutional_network(batch_norm):
    model = cr.Model(seed=0, dtype=np.float64).add(cr.Conv2D(1, 4, 3, padding="same"))
    if batch_norm:
        model.add(cr.BatchNormalization(4))
    model.add(cr.ReLU()).add(cr.MaxPool2D(2)).add(cr.Flatten()).add(cr.Dense(3 * 3 * 4, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))


def layer_arrays(model, prefix):
    """Each layer's trainable parameters (p...) and running statistics (s...), by layer index."""
    arrays = {}
    for index, layer in enumerate(model.layers):
        arrays |= {f"{prefix}p{index}{name}": value for name, value in layer.parameters().items()}
        arrays |= {f"{prefix}s{index}{name}": value for name, value in getattr(layer, "non_trainable", dict)().items()}
    return arrays


def record(out, rank, **arrays):
    np.savez(out / f"rank{rank}.npz", **arrays)


def history_arrays(history, prefix=""):
    return {f"{prefix}{key}": np.array(values) for key, values in history.history.items()}


def weights_arrays(model, prefix=""):
    return {f"{prefix}w{index}": array for index, array in enumerate(model.get_weights())}


class Raise(cr.callbacks.Callback):
    def __init__(self, rank):
        self.rank = rank

    def on_epoch_end(self, epoch, logs):
        if epoch == 2 and self.rank == 1:
            raise RuntimeError("rank 1 planted a failure")


class PressCtrlC(cr.callbacks.Callback):
    def __init__(self, rank):
        self.rank = rank

    def on_epoch_end(self, epoch, logs):
        if epoch == 2 and self.rank == 1:
            os.kill(os.getpid(), signal.SIGINT)


@contextlib.contextmanager
def recorded_error(out, rank):
    """Each rank writes the ValueError it raised to rank<N>.error (uncaught, the first rank to
    reach the top would abort the job, and the others might end before they print theirs)."""
    try:
        yield
    except ValueError as error:
        (out / f"rank{rank}.error").write_text(str(error))


class Started(cr.callbacks.Callback):
    """Rank 0 writes `started` once two epochs have run (callbacks marked root_only run there alone)."""

    root_only = True

    def __init__(self, out):
        self.out = out

    def on_epoch_end(self, epoch, logs):
        if epoch == 1:
            (self.out / "started").touch()


def main(scenario, out):
    from mpi4py import MPI

    rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    X, y = cr.datasets.spiral_data(100, 3, seed=1)
    X_val, y_val = cr.datasets.spiral_data(30, 3, seed=2)
    if scenario == "replicated":
        model = network(seed=None if rank else 0)  # other ranks start elsewhere: rank 0's weights must win
        history = model.fit(
            X, y, epochs=15, batch_size=32, validation_data=(X_val, y_val), verbose=0, distributed="mpi"
        )
        model.save(out / f"saved-by-rank{rank}.npz")
        record(out, rank, **history_arrays(history), **weights_arrays(model))
    elif scenario == "sharded":
        # Replicated without shuffling: each batch of 30 is cut in `size` consecutive parts.
        replicated = network()
        history = replicated.fit(X, y, epochs=5, batch_size=30, shuffle=False, verbose=0, distributed="mpi")
        # Sharded: each rank holds exactly the parts it took above, in the same order.
        batches = [np.arange(start, min(start + 30, len(X))) for start in range(0, len(X), 30)]
        mine = np.concatenate([np.array_split(rows, size)[rank] for rows in batches])
        sharded = network()
        sharded_history = sharded.fit(
            X[mine], y[mine], epochs=5, batch_size=30, shuffle=False, verbose=0, distributed="mpi", sharded=True
        )
        record(
            out,
            rank,
            **history_arrays(history),
            **weights_arrays(replicated),
            **history_arrays(sharded_history, "sharded_"),
            **weights_arrays(sharded, "sharded_"),
        )
    elif scenario == "raise":
        network().fit(X, y, epochs=10, batch_size=32, verbose=0, distributed="mpi", callbacks=[Raise(rank)])
    elif scenario == "bad-data":
        X_mine = X.copy()
        if rank == 1:
            X_mine[5, 0] = np.nan
        network().fit(X_mine, y, epochs=3, verbose=0, distributed="mpi", sharded=True)
    elif scenario == "diverge":
        X_mine = X.astype(np.float64) * (1e150 if rank == 1 else 1.0)  # only rank 1 diverges
        model = cr.Model(seed=0, dtype=np.float64).add(cr.Dense(2, 1)).add(cr.Linear())
        model.compile(loss="mse", optimizer=cr.SGD(1.0)).fit(
            X_mine, y.astype(float), epochs=3, verbose=0, distributed="mpi", sharded=True
        )
    elif scenario == "cnn":
        rng = np.random.default_rng(3)
        images, labels = rng.standard_normal((64, 6, 6, 1)), rng.integers(0, 3, 64)
        arrays = {}
        for batch_norm in (False, True):
            model = convolutional_network(batch_norm)
            model.fit(images, labels, epochs=4, batch_size=16, verbose=0, distributed="mpi")
            arrays |= layer_arrays(model, "bn_" if batch_norm else "plain_")
        record(out, rank, **arrays)
    elif scenario == "ctrl-c":
        history = network().fit(X, y, epochs=10, verbose=0, distributed="mpi", callbacks=[PressCtrlC(rank)])
        record(out, rank, interrupted=history.interrupted, epochs=len(history.epoch))
    elif scenario == "resume-on-rank-0":  # rank 0 alone trained on (as if it had loaded a checkpoint)
        model = network()
        if rank == 0:
            model.fit(X, y, epochs=3, batch_size=32, verbose=0)
        model.fit(X, y, epochs=5, batch_size=32, verbose=0, distributed="mpi")
        record(out, rank, iterations=model.optimizer.iterations, **weights_arrays(model))
    elif scenario == "other-network":
        model = cr.Model(seed=0).add(cr.Dense(2, 16 if rank == 0 else 8)).add(cr.ReLU())
        model.add(cr.Dense(16 if rank == 0 else 8, 3)).add(cr.Softmax())
        model.compile(loss="categorical_crossentropy", optimizer="adam")
        with recorded_error(out, rank):
            model.fit(X, y, epochs=2, verbose=0, distributed="mpi")
    elif scenario == "other-data":
        with recorded_error(out, rank):
            network().fit(X + (rank == 1) * 1e-3, y, epochs=2, verbose=0, distributed="mpi")
    elif scenario == "uneven-shards":
        mine = slice(0, 100) if rank == 0 else slice(100, 110)
        model = network()
        history = model.fit(
            X[mine], y[mine], epochs=1, batch_size=32, shuffle=False, verbose=0, distributed="mpi", sharded=True
        )
        record(out, rank, iterations=model.optimizer.iterations, **history_arrays(history), **weights_arrays(model))
    elif scenario == "save-then-load":
        model = network()
        loaded = []
        for _ in range(3):
            model.fit(X, y, epochs=2, batch_size=32, verbose=0, distributed="mpi")
            model.save(out / "shared.npz")
            loaded.append(cr.load_model(out / "shared.npz").get_weights()[0])
        record(out, rank, loaded=np.array(loaded), trained=model.get_weights()[0])
    elif scenario == "dropout":
        model = cr.Model(seed=5).add(cr.Dense(2, 16)).add(cr.ReLU()).add(cr.Dropout(0.5, seed=11)).add(cr.Dense(16, 3))
        model.add(cr.Softmax()).compile(loss="categorical_crossentropy", optimizer="adam")
        model.fit(X, y, epochs=1, batch_size=32, verbose=0, distributed="mpi")
        record(out, rank, draws=model.layers[2].rng.random(8))
    elif scenario == "callback-fails-on-rank-0":
        checkpoint = cr.callbacks.ModelCheckpoint(str(out / "best.npz"), monitor="val_loss")  # no validation data
        network().fit(X, y, epochs=3, verbose=0, distributed="mpi", callbacks=[checkpoint])
    elif scenario == "save-on-rank-0-only":
        model = network()
        model.fit(X, y, epochs=1, verbose=0, distributed="mpi")
        if rank == 0:
            model.save(out / "alone.npz")
    elif scenario == "raise-before-fit":  # user code failing on one rank before any distributed fit
        if rank == 1:
            raise RuntimeError("rank 1 failed while loading its data")
        network().fit(X, y, epochs=2, verbose=0, distributed="mpi")
    elif scenario == "until-ctrl-c":  # trains until stopped; rank 0 says when it is under way
        checkpoint = cr.callbacks.ModelCheckpoint(str(out / "checkpoint.npz"), monitor="loss", save_best_only=False)
        history = network().fit(
            X, y, epochs=1_000_000, batch_size=32, verbose=0, distributed="mpi", callbacks=[Started(out), checkpoint]
        )
        record(out, rank, interrupted=history.interrupted, epochs=len(history.epoch))
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
