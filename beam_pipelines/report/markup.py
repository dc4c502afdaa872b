"""Small HTML building blocks: escaping, tables, figures."""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence, Tuple

__all__ = ["esc", "table", "figure_html", "kv_table"]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (),
          cls: str = "") -> str:
    numeric = set(numeric)
    out = [f'<table class="{esc(cls)}">' if cls else "<table>", "<thead><tr>"]
    out += [f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
            for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def figure_html(uri: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{esc(alt)}">{cap}</figure>'


def kv_table(rows: Iterable[Tuple[str, str]]) -> str:
    return ('<table class="kv"><tbody>'
            + "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
            + "</tbody></table>")
