"""A table as its author laid it out -> a header and rows of values, decided by the table's shape alone.

Real datasheets repeat the header row inside the body (a table continued on a new page), put a group name over
sub-columns (a two-row header: "Supply voltage" over "Min | Typ | Max"), set two column pairs side by side to save
space (| Pin | Function | Pin | Function |), write notes as rows of one cell, and mark values with footnote
markers ("5.5¹", "3.6 (1)", "20*"). None of that is a value: `shape` turns it into one header and plain rows.
"""

from __future__ import annotations

import re

# A cell a footnote marker may follow: a number, possibly with a sign and a unit ("5.5", "-40 °C", "≤ 20 mA").
_VALUE = re.compile(r"^[<>≤≥~±+\-−]?\s*\d")
_SUPERSCRIPT = re.compile(r"\s*[\u00b9\u00b2\u00b3\u2070-\u2079†‡]+$")
# "(1)", "[2]", "*" after a value or a header; "(1)" glued to a word ("Supply voltage(1)") anywhere.
_MARK = re.compile(r"\s*(?:\(\d{1,2}\)|\[\d{1,2}\]|\*{1,3})$")
_GLUED = re.compile(r"(?<=\S)\(\d{1,2}\)$")


def unmarked(cell: str, header: bool = False) -> str:
    """A cell without its trailing footnote marker."""
    cell = _SUPERSCRIPT.sub("", cell)
    if header or _VALUE.match(cell):
        cell = _MARK.sub("", cell)
    return _GLUED.sub("", cell).strip()


def _fold(cells: list[str]) -> list[str]:
    return [" ".join(c.split()).casefold() for c in cells]


def _continues_header(header: list[str], row: list[str]) -> bool:
    """A Markdown table's second header row: no value in it, an empty key cell, and a name under an empty header
    cell (Markdown has no column spans: the group name stands over the first of its columns, the rest are empty)."""
    if not row or row[0] or any(_VALUE.match(c) for c in row):
        return False
    return any(c and j < len(header) and not header[j] for j, c in enumerate(row))


def _merge(top: list[str], sub: list[str]) -> list[str]:
    """One name per column: a group name carried over the empty cells to its right, joined to the sub-name."""
    out, group = [], ""
    for j in range(max(len(top), len(sub))):
        t, s = top[j] if j < len(top) else "", sub[j] if j < len(sub) else ""
        group = t or (group if s else "")
        out.append(f"{group} / {s}" if group and s and group != s else s or group)
    return out


def period(header: list[str]) -> int:
    """How many columns one of side-by-side column groups has (| A | B | A | B | -> 2); the width when none."""
    names, n = _fold(header), len(header)
    for p in range(1, n // 2 + 1):
        # one name repeated (| Pin | Pin | Pin |) is no pair of columns, unless the table has only two
        if n % p == 0 and all(names[:p]) and all(names[k] == names[k % p] for k in range(n)) and (p > 1 or n == 2):
            return p
    return n


# A column name is a few words: a longer cell, or one ending as a sentence does, is text of a row.
_MAX_NAME_WORDS = 6


def is_header(row: list[str]) -> bool:
    """Whether the first row of a table that does not mark its header (HTML with no <th>) names its columns: no cell
    is a value (a number, a sign and a number) or a sentence, and some cell is filled. A key-value table
    ("Voltage | 230 V") starts with data, and its first row is then a row like the others."""
    cells = [" ".join(c.split()) for c in row]
    if not any(cells):
        return False
    return not any(
        _VALUE.match(c) or len(c.split()) > _MAX_NAME_WORDS or c.endswith((".", "!", "?")) for c in cells if c
    )


def is_note(row: list[str]) -> bool:
    """A row that is a note, not values: one non-empty cell in a wider table, or one cell spanning them all."""
    filled = [c for c in row if c]
    return len(row) > 1 and (len(filled) == 1 or (len(filled) == len(row) and len(set(_fold(filled))) == 1))


def _repeats(row: list[str], names: list[set[str]]) -> bool:
    cells = [(j, c) for j, c in enumerate(_fold(row)) if c]
    return len(cells) >= 2 and all(j < len(names) and c in names[j] for j, c in cells)


def shape(headers: list[list[str]], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): header rows merged, repeated header rows, note rows and footnote markers gone, side-by-side
    column groups split into one row each. `headers`: the rows the markup marks as header, top first."""
    headers = [[unmarked(c, header=True) for c in h] for h in headers]
    rows = [[unmarked(c) for c in r] for r in rows]
    if len(headers) == 1 and rows and _continues_header(headers[0], rows[0]):
        headers.append([unmarked(c, header=True) for c in rows.pop(0)])
    header = headers[0] if headers else []
    for sub in headers[1:]:
        header = _merge(header, sub)
    # A header row repeated in the body (a table continued on a new page), whole or only its lower row.
    names = [
        {*_fold([h[j] for h in headers if j < len(h)]), *_fold(header[j].split(" / "))} for j in range(len(header))
    ]
    rows = [r for r in rows if not _repeats(r, names) and not is_note(r)]
    p = period(header)
    if p < len(header):
        rows = [part for r in rows for k in range(0, len(header), p) if any(part := r[k : k + p])]
        header = header[:p]
    return header, rows
