"""HTML for notebooks: what prints as a text table also shows as an HTML table (`_repr_html_`)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """A plain HTML table; every cell is escaped text (multi-line cells keep their lines)."""

    def cell(value: Any, tag: str) -> str:
        text = html.escape(str(value))
        return f"<{tag} style='text-align:left'>{'<br>'.join(text.splitlines()) or text}</{tag}>"

    head = "".join(cell(name, "th") for name in header)
    body = "".join(f"<tr>{''.join(cell(value, 'td') for value in row)}</tr>" for row in rows)
    title = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
