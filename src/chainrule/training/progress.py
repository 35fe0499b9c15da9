"""Progress output during `fit`, as callbacks: a bar on a terminal (verbose=1), a line per epoch (2)."""

from __future__ import annotations

from tqdm.auto import tqdm

from chainrule.training.callbacks import Callback


class ProgressBar(Callback):
    """A tqdm bar over the epochs, showing the latest loss and metrics; silent off a terminal."""

    root_only = True
    needs_each_epoch = False

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_begin(self) -> None:
        self.bar = tqdm(total=self.epochs, unit="epoch", disable=None, leave=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if not self.bar.disable:
            shown = {key: f"{value:.4f}" for key, value in logs.items() if "_loss" not in key}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update()

    def on_train_end(self) -> None:
        self.bar.close()


class EpochLines(Callback):
    """One printed line per epoch: `epoch 3/10  loss 0.9812  accuracy 0.5400 ...`."""

    root_only = True
    needs_each_epoch = False

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        values = "  ".join(f"{key} {value:.4f}" for key, value in logs.items() if "regularization" not in key)
        print(f"epoch {epoch + 1}/{self.epochs}  {values}", flush=True)


def progress_callbacks(verbose: int, epochs: int) -> list[Callback]:
    """The progress output `verbose` asks for: 0 nothing, 1 a bar, 2 a line per epoch."""
    choices: dict[int, list[Callback]] = {0: [], 1: [ProgressBar(epochs)], 2: [EpochLines(epochs)]}
    return choices[verbose]
