"""A page of plain text lines (a PDF text layer, or OCR of a scanned page) as one section's elements, for extract.

A page has no markup, so its structure comes from the lines themselves. The first line names the section:
`Aquis - Specifications - AQ-200` (its heading parts); then `1. …` is a step, `- …` a note, and the corpus's own
row conventions (RowLabels, from params) make table rows: a run of `Label: text` lines with the labels of one of
extract.labelled_rows is a row with those columns, and `Name: 24 kW` a row of extract.key_value_columns. Anything
else is prose. A PDF's text layer also places each piece of text: lines whose pieces start in the same columns are a
table (pdf_lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

_NUMBER = re.compile(r"[-+−~≈<>≤≥]?\d[\d.,]*(?:[-–]\d[\d.,]*)?%?")
_STEP, _BULLET = re.compile(r"(\d+)[.)]\s+(.*)"), re.compile(r"[-•*–]\s+(.*)")
_KEY_VALUE = re.compile(r"([^:]{1,60}):\s+(.+)")


@dataclass(frozen=True)
class RowLabels:
    """How a corpus writes table rows as lines: its own words, from params (extract.labelled_rows,
    extract.key_value_columns, extract.key_value_headings), so a corpus in other conventions needs a params edit,
    never a code edit. The default knows none: every such line is prose."""

    labelled: tuple[tuple[str, ...], ...] = ()  # each: the labels of one kind of row, in column order
    key_value: tuple[str, ...] = ()  # the columns of a `Name: value unit` row (name, value, unit); () = none
    key_value_headings: tuple[str, ...] = ()  # heading words of a page where any `Name: value` line is such a row

    @classmethod
    def from_lists(cls, labelled: list[list[str]], key_value: list[str], key_value_headings: list[str]) -> RowLabels:
        """From the params' lists (extract.labelled_rows, extract.key_value_columns, extract.key_value_headings)."""
        return cls(tuple(tuple(labels) for labels in labelled), tuple(key_value), tuple(key_value_headings))

    @cached_property
    def _label_line(self) -> re.Pattern | None:
        labels = sorted({label for row in self.labelled for label in row}, key=len, reverse=True)
        return re.compile(rf"({'|'.join(map(re.escape, labels))})\s*:\s*(.*)", re.IGNORECASE) if labels else None

    def labelled_field(self, line: str) -> tuple[int, int, str] | None:
        """(which row kind, which column, text) of a `Label: text` line; None for any other line."""
        if self._label_line is None or not (m := self._label_line.fullmatch(line)):
            return None
        label = m[1].casefold()
        for kind, labels in enumerate(self.labelled):
            for column, name in enumerate(labels):
                if name.casefold() == label:
                    return kind, column, m[2]
        return None

    def key_value_page(self, heading_word: str) -> bool:
        return any(heading_word.casefold().startswith(w.casefold()) for w in self.key_value_headings)


NO_ROWS = RowLabels()  # a corpus with no row conventions: the default wherever none is given


def split_value_unit(value: str) -> tuple[str, str]:
    """'24 kW' -> ('24', 'kW'); '1050 x 560 mm' -> ('1050 x 560', 'mm'): the unit is what follows the last number."""
    tokens = value.split()
    last = max((i for i, t in enumerate(tokens) if _NUMBER.fullmatch(t)), default=None)
    return (value, "") if last is None else (" ".join(tokens[: last + 1]), " ".join(tokens[last + 1 :]))


def line_kind(line: str, specs_page: bool, rows: RowLabels) -> tuple:
    """What a line of a page is: ("ol", step), ("ul", note), (("row", k), column, text) for a line of row kind k of
    rows.labelled, ("spec", name, value) for a key-value line, or ("para", line)."""
    if m := _STEP.fullmatch(line):
        return "ol", (m[2],)
    if m := _BULLET.fullmatch(line):
        return "ul", (m[1],)
    if found := rows.labelled_field(line):
        return ("row", found[0]), found[1:]
    # 'Volume: 150 L' is a key-value line, 'Note: set it to 3 bar.' is prose; off a key-value page (a Specifications
    # page, say) values are numbers.
    m = _KEY_VALUE.fullmatch(line) if rows.key_value else None
    if m and ". " not in m[1] and m[2][-1] != "." and (specs_page or m[2][0].isdigit()):
        return "spec", (m[1], m[2])
    return "para", (line,)


def page_elements(lines: list, specs_page: bool, rows: RowLabels = NO_ROWS) -> list[tuple]:
    """The body lines of a page as section elements: ("table", header, rows), ("ol"|"ul", items), ("para", text).
    A line may already be a table found by its layout, ("table", header, rows); it stays one."""

    def wrappable(kind) -> bool:
        return kind in ("ol", "ul") or isinstance(kind, tuple)

    merged: list = []
    for line in lines:
        prev = merged and isinstance(merged[-1], str) and line_kind(merged[-1], specs_page, rows)[0]
        wraps = isinstance(line, str) and wrappable(prev) and line_kind(line, specs_page, rows)[0] == "para"
        if wraps and (line[:1].islower() or not re.search(r"[.!?)]$", merged[-1])):
            merged[-1] += " " + line  # a step, note or row the layout wrapped onto the next line
        else:
            merged.append(line)
    groups: list[list] = []  # [kind, values] for each run of lines of one kind
    for line in merged:
        kind, found = ("layout", line) if isinstance(line, tuple) else line_kind(line, specs_page, rows)
        if not groups or groups[-1][0] != kind or kind == "layout":
            groups.append([kind, []])
        values = groups[-1][1]
        if isinstance(kind, tuple):  # a labelled row's field: its first label starts the next row
            column, text = found
            if column == 0 or not values or values[-1][column]:
                values.append([""] * len(rows.labelled[kind[1]]))
            values[-1][column] = text
        elif kind == "spec":
            values.append([found[0], *split_value_unit(found[1])])
        elif kind == "layout":
            groups[-1] = list(found)
        else:
            values.append(found[0])
    out = []
    for kind, *content in groups:
        if isinstance(kind, tuple):
            out.append(("table", list(rows.labelled[kind[1]]), content[0]))
        elif kind == "spec":
            out.append(("table", list(rows.key_value), content[0]))
        elif kind == "para":  # the text layer has no paragraph breaks, so a page's prose lines make one paragraph
            out.append(("para", " ".join(content[0]), None))
        elif kind in ("ol", "ul"):
            out.append((kind, content[0], []))
        else:
            out.append((kind, *content))
    return out


def page_section(lines: list, untitled: str = "page", rows: RowLabels = NO_ROWS) -> tuple[list[str], list[tuple]]:
    """(heading parts, elements) of a page's non-blank lines: the first line is its heading (`untitled` when the
    page starts with a table)."""
    if not isinstance(lines[0], str):
        return [untitled], page_elements(lines, False, rows)
    parts = re.split(r"\s+[-–—]\s+", lines[0])  # spaced dashes only: model codes like AQ-200 keep theirs
    word = parts[1] if len(parts) > 1 else parts[0]
    return parts, page_elements(lines[1:], rows.key_value_page(word), rows)


def pdf_lines(fragments: list[tuple[float, float, str]], tolerance: float = 2.0) -> list:
    """A page's text pieces (x, y, text) as lines top to bottom; runs of two or more lines of three or more pieces
    that start in the header line's columns become one ("table", header, rows) item. A cell the layout wrapped over
    several lines joins the row nearest to it (a line of fewer pieces, none in the first column)."""
    lines: list[list] = []  # [y, [(x, text), ...]]
    for x, y, text in sorted(fragments, key=lambda f: (-f[1], f[0])):
        if lines and abs(lines[-1][0] - y) <= tolerance:
            lines[-1][1].append((x, text))
        else:
            lines.append([y, [(x, text)]])
    out, table = [], []

    def text_of(pieces) -> str:
        return " ".join(" ".join(t for _, t in pieces).split())

    def flush():
        full = [line for line in table if len(line[1]) >= 3]
        if len(full) < 2:
            out.extend(text_of(pieces) for _, pieces in table)
        else:
            cols = [x for x, _ in full[0][1]]
            cells = [["" for _ in cols] for _ in full]
            for y, pieces in table:  # top to bottom, so a wrapped cell's lines join in reading order
                row = min(range(len(full)), key=lambda i: abs(full[i][0] - y))
                for x, text in pieces:
                    col = min(range(len(cols)), key=lambda i: abs(cols[i] - x))
                    cells[row][col] = " ".join(f"{cells[row][col]} {text}".split())
            out.append(("table", cells[0], cells[1:]))
        table.clear()

    for y, pieces in lines:
        cols = [x for x, _ in table[0][1]] if table else []
        aligned = cols and all(any(abs(x - c) <= tolerance for c in cols) for x, _ in pieces)
        wrapped = aligned and len(pieces) < 3 and all(abs(x - cols[0]) > tolerance for x, _ in pieces)
        if table and (wrapped or (aligned and len(pieces) >= 3)):
            table.append([y, pieces])
            continue
        flush()
        if len(pieces) >= 3:
            table.append([y, pieces])
        else:
            out.append(text_of(pieces))
    flush()
    return [line for line in out if line]
