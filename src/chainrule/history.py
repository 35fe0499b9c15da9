"""History: the per-epoch values `Model.fit` records, kept by a callback as Keras does."""

from __future__ import annotations

from chainrule.callbacks import Callback


class History(Callback):
    """Per-epoch values recorded by `fit`: `history.history["loss"][epoch]` and so on."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False  # set by fit when Ctrl-C ended training early

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
