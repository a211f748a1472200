"""Rows of dicts as a plain-text table: the one printer for the study's summary (study.runner) and its front
(study.results.front). Columns are the union over rows in first-seen order (variants have different knobs), a
column empty in every row is left out, '-' marks a value a row lacks, floats show 4 significant digits."""

from __future__ import annotations


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict], headers: dict[str, str] | None = None, width: int | None = None,
                 empty: str = "(no rows)") -> str:
    """`headers` renames columns on print; `width` cuts the last column so that every line fits (an ellipsis marks
    the cut), for a column of free text such as a trial's knobs."""
    if not rows:
        return empty
    headers = headers or {}
    columns = [c for c in dict.fromkeys(c for row in rows for c in row) if any(row.get(c) is not None for row in rows)]
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    names = [headers.get(c, c) for c in columns]
    widths = [max(len(n), *(len(line[i]) for line in cells)) for i, n in enumerate(names)]
    lines = []
    for line in [names, *cells]:
        text = "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
        if width is not None and len(text) > width:
            text = text[: width - 1] + "…"
        lines.append(text)
    return "\n".join(lines)
