"""Progress output during `fit`, as callbacks: a bar on a terminal (verbose=1), a line per epoch (2)."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from chainrule.training.callbacks import Callback


def bar(**options: Any) -> Any:
    """A tqdm bar: a widget in Jupyter when ipywidgets is there (the extra `notebook`), a text bar
    in the cell's output when it is not (rather than tqdm's warning and a bar on stderr, which
    Jupyter shows in red), and on a terminal a bar on stderr, silent off one."""
    in_jupyter = "ipykernel" in sys.modules
    if in_jupyter and importlib.util.find_spec("ipywidgets") is None:
        from tqdm.std import tqdm as text_bar

        return text_bar(file=sys.stdout, **options)
    from tqdm.auto import tqdm

    return tqdm(disable=None, **options)


class ProgressBar(Callback):
    """A tqdm bar over the epochs, showing the latest loss and metrics (see `bar`)."""

    root_only = True
    needs_each_epoch = False

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_begin(self) -> None:
        self.bar = bar(total=self.epochs, unit="epoch", leave=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if not self.bar.disable:
            shown = {key: f"{value:.4f}" for key, value in logs.items() if "_loss" not in key}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update()

    def on_train_end(self) -> None:
        self.bar.close()


class EpochLines(Callback):
    """One printed line per epoch: `epoch 3/10  loss 0.9812  accuracy 0.5400 ...`; with `lines`,
    about that many over the run (and always the last epoch's)."""

    root_only = True
    needs_each_epoch = False

    def __init__(self, epochs: int, lines: int | None = None) -> None:
        self.epochs = epochs
        self.every = 1 if lines is None else max(1, epochs // lines)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        values = "  ".join(f"{key} {value:.4f}" for key, value in logs.items() if "regularization" not in key)
        print(f"epoch {epoch + 1}/{self.epochs}  {values}", flush=True)


MPI_LINES = 20  # lines over a distributed run with verbose=1 when stderr is not a terminal


def progress_callbacks(verbose: int, epochs: int, distributed: bool = False) -> list[Callback]:
    """The progress output `verbose` asks for: 0 nothing, 1 a bar, 2 a line per epoch. Under
    mpiexec stderr is never a terminal, so a bar would never show: rank 0 prints about MPI_LINES
    lines instead."""
    if verbose == 1 and distributed and not sys.stderr.isatty():
        return [EpochLines(epochs, lines=MPI_LINES)]
    choices: dict[int, list[Callback]] = {0: [], 1: [ProgressBar(epochs)], 2: [EpochLines(epochs)]}
    return choices[verbose]
