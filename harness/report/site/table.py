"""A table as interactive HTML: the report's formatted cells as they are, each sortable column's
numbers in `data-value` (so `0.83 ± 0.02` sorts by 0.83 and `16,384` by 16384), a drop-down filter
for the columns named in `filters`, a search box, a count of the rows shown and a link to the
table's CSV. static/site.js does the sorting and filtering in the browser."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from harness.report.site.html import anchor, text


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# A cell that sorts by its leading number: `16,384`, `0.83 ± 0.02`, `+0.0123 (± 0.0040)`, `1.6e+04 ± 0`.
NUMBER_CELL = re.compile(r"[+-]?(\d[\d,]*\.?\d*|\.\d+)(e[+-]?\d+)?( ± .*| \(.*\))?")
MISSING_CELLS = {"", "n/a", "nan"}


def _numeric(column: pd.Series) -> bool:
    """A column whose every cell is a number (NUMBER_CELL) or missing sorts as numbers without `data-value`."""
    cells = [str(value).strip() for value in column]
    present = [cell for cell in cells if cell not in MISSING_CELLS]
    return bool(present) and all(NUMBER_CELL.fullmatch(cell) for cell in present)


def _cell(value: object, sort_value: object | None, href: str | None) -> str:
    content = anchor(str(value), href) if href else text(value)
    if sort_value is None:
        return f"<td>{content}</td>"
    number = float(sort_value) if _is_number(sort_value) else math.nan
    shown = repr(number) if math.isfinite(number) else ""
    return f'<td data-value="{shown}">{content}</td>'


def _filter(table_id: str, name: str, values: pd.Series) -> str:
    options = "".join(f'<option value="{text(v)}">{text(v)}</option>' for v in sorted(set(values.astype(str))))
    return (f'<label>{text(name)} <select data-table="{table_id}" data-filter="{text(name)}">'
            f'<option value="">all</option>{options}</select></label>')


def interactive_table(table_id: str, cells: pd.DataFrame, sort_values: Mapping[str, Sequence[object]] | None = None,
                      links: Mapping[str, Sequence[str | None]] | None = None, filters: Sequence[str] = (),
                      csv_href: str | None = None) -> str:
    """`cells`: the formatted table (one string per cell, as the markdown report shows it).
    `sort_values`: per column, the numbers it sorts by (NaN or None sort last). `links`: per
    column, each cell's href (None: no link)."""
    sort_values, links = dict(sort_values or {}), dict(links or {})
    columns = list(cells.columns)
    numeric = {c: c in sort_values or _numeric(cells[c]) for c in columns}
    head = "".join(f'<th data-name="{text(c)}" data-type="{"number" if numeric[c] else "text"}" tabindex="0">{text(c)}</th>'
                   for c in columns)
    per_column = [
        (cells[c].tolist(), list(sort_values[c]) if c in sort_values else [None] * len(cells),
         list(links[c]) if c in links else [None] * len(cells))
        for c in columns
    ]
    rows = []
    for i in range(len(cells)):
        rows.append("<tr>" + "".join(_cell(values[i], sorts[i], hrefs[i]) for values, sorts, hrefs in per_column) + "</tr>")
    controls = [_filter(table_id, name, cells[name]) for name in filters if name in cells]
    controls.append(f'<label>Search <input type="search" data-table="{table_id}" data-search placeholder="any cell"></label>')
    controls.append(f'<span class="rows-shown" data-table="{table_id}">{len(cells)} of {len(cells)} rows</span>')
    if csv_href:
        controls.append(anchor("Download CSV", csv_href))
    return (f'<div class="controls">{" ".join(controls)}</div>\n'
            f'<div class="table-wrap"><table id="{table_id}" class="interactive"><thead><tr>{head}</tr></thead>\n'
            f'<tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>\n")
