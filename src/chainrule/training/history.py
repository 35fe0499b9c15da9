"""History: the per-epoch values `Model.fit` records, kept by a callback as Keras does."""

from __future__ import annotations

import base64
import io

from chainrule.display import curves_figure, html_table
from chainrule.training.callbacks import Callback

SHOWN_EPOCHS = 20  # rows of a History's HTML table


class History(Callback):
    """Per-epoch values recorded by `fit`: `history.history["loss"][epoch]` and so on."""

    needs_each_epoch = False

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

    def _repr_html_(self) -> str:
        """The curves (when matplotlib is installed), then the last SHOWN_EPOCHS epochs as a table.
        A notebook shows HTML before PNG, so the picture is embedded here, first."""
        picture = self._repr_png_()
        image = f"<img src='data:image/png;base64,{base64.b64encode(picture).decode()}'/>" if picture else ""
        return image + self.table_html()

    def table_html(self) -> str:
        """The last SHOWN_EPOCHS epochs as an HTML table."""
        keys = list(self.history)
        first = max(0, len(self.epoch) - SHOWN_EPOCHS)
        rows = [
            (self.epoch[row] + 1, *(f"{self.history[key][row]:.4f}" for key in keys))
            for row in range(first, len(self.epoch))
        ]
        caption = f"History: {len(self.epoch)} epochs" + (f" (the last {SHOWN_EPOCHS})" if first else "")
        return html_table(["epoch", *keys], rows, caption=caption)

    def _repr_png_(self) -> bytes | None:
        """The loss and metric curves, when matplotlib is installed (the extra `plot`)."""
        if not self.epoch:
            return None
        try:
            figure = curves_figure(self.epoch, self.history)
        except ImportError:
            return None
        stream = io.BytesIO()
        figure.savefig(stream, format="png", dpi=80)
        return stream.getvalue()
