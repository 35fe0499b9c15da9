"""How values are shown: HTML tables for notebooks (what prints as a text table also shows as an
HTML table, `_repr_html_`) and matplotlib figures (training curves), drawn with matplotlib's
object API, so no GUI backend or global pyplot state is involved."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """A plain HTML table; every cell is escaped text (multi-line cells keep their lines)."""

    def cell(value: Any, tag: str) -> str:
        text = html.escape(str(value))
        return f"<{tag} style='text-align:left'>{'<br>'.join(text.splitlines()) or text}</{tag}>"

    head = "".join(cell(name, "th") for name in header)
    body = "".join(f"<tr>{''.join(cell(value, 'td') for value in row)}</tr>" for row in rows)
    title = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure, or an ImportError that says how to install the extra."""
    try:
        from matplotlib.figure import Figure  # the optional extra `plot`, imported when first drawn
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError("plotting needs matplotlib: pip install 'chainrule[plot]'") from error
    return Figure(figsize=(width, height), layout="constrained")


def curves_figure(epochs: Sequence[int], values: Mapping[str, Sequence[float]]) -> Any:
    """Loss (and each metric) per epoch, training and validation (`val_` keys), one panel each:
    a History's picture."""
    metrics = [key for key in values if not key.startswith("val_") and "loss" not in key]
    figure = new_figure(5 * (1 + len(metrics)), 4)
    axes = figure.subplots(1, 1 + len(metrics), squeeze=False)[0]
    numbers = np.asarray(epochs) + 1
    for axis, key in zip(axes, ["loss", *metrics], strict=True):
        axis.plot(numbers, values[key], label=f"training {key}")
        if f"val_{key}" in values:
            axis.plot(numbers, values[f"val_{key}"], label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.legend()
    if len(numbers) > 100:
        axes[0].set_yscale("log")
    return figure
