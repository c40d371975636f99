"""A page of plain text lines (a PDF text layer, or OCR of a scanned page) as one section's elements, for extract.

A page has no markup, so its structure comes from the lines themselves. The first line names the section:
`Aquis - Specifications - AQ-200` (its heading parts); then `1. …` is a step, `- …` a note,
`Symptom:`/`Cause:`/`Remedy:` a troubleshooting row, `Parameter: 24 kW` a spec row, anything else prose. A PDF's text
layer also places each piece of text: lines whose pieces start in the same columns are a table (pdf_lines).
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"[-+−~≈<>≤≥]?\d[\d.,]*(?:[-–]\d[\d.,]*)?%?")
_STEP, _BULLET = re.compile(r"(\d+)[.)]\s+(.*)"), re.compile(r"[-•*–]\s+(.*)")
_TROUBLE = re.compile(r"(symptom|cause|remedy)\s*:\s*(.*)", re.IGNORECASE)
_SPEC = re.compile(r"([^:]{1,60}):\s+(.+)")
_TROUBLE_HEAD, _SPEC_HEAD = ["Symptom", "Cause", "Remedy"], ["Parameter", "Value", "Unit"]


def split_value_unit(value: str) -> tuple[str, str]:
    """'24 kW' -> ('24', 'kW'); '1050 x 560 mm' -> ('1050 x 560', 'mm'): the unit is what follows the last number."""
    tokens = value.split()
    last = max((i for i, t in enumerate(tokens) if _NUMBER.fullmatch(t)), default=None)
    return (value, "") if last is None else (" ".join(tokens[: last + 1]), " ".join(tokens[last + 1 :]))


def line_kind(line: str, specs_page: bool) -> tuple[str, tuple]:
    """What a line of a page is: ("ol", step), ("ul", note), ("trouble", field, text), ("spec", key, value), prose."""
    if m := _STEP.fullmatch(line):
        return "ol", (m[2],)
    if m := _BULLET.fullmatch(line):
        return "ul", (m[1],)
    if m := _TROUBLE.fullmatch(line):
        return "trouble", (m[1].lower(), m[2])
    # 'Volume: 150 L' is a spec line, 'Note: set it to 3 bar.' is prose; off a Specifications page values are numbers.
    if (m := _SPEC.fullmatch(line)) and ". " not in m[1] and m[2][-1] != "." and (specs_page or m[2][0].isdigit()):
        return "spec", (m[1], m[2])
    return "para", (line,)


def page_elements(lines: list, specs_page: bool) -> list[tuple]:
    """The body lines of a page as section elements: ("table", header, rows), ("ol"|"ul", items), ("para", text).
    A line may already be a table found by its layout, ("table", header, rows); it stays one."""
    merged: list = []
    for line in lines:
        prev = merged and isinstance(merged[-1], str) and line_kind(merged[-1], specs_page)[0]
        wraps = isinstance(line, str) and prev in ("ol", "ul", "trouble") and line_kind(line, specs_page)[0] == "para"
        if wraps and (line[:1].islower() or not re.search(r"[.!?)]$", merged[-1])):
            merged[-1] += " " + line  # a step or note the layout wrapped onto the next line
        else:
            merged.append(line)
    groups: list[list] = []  # [kind, values] for each run of lines of one kind
    for line in merged:
        kind, found = ("layout", line) if isinstance(line, tuple) else line_kind(line, specs_page)
        if not groups or groups[-1][0] != kind or kind == "layout":
            groups.append([kind, []])
        values = groups[-1][1]
        if kind == "trouble":
            field = ("symptom", "cause", "remedy").index(found[0])
            if field == 0 or not values or values[-1][field]:  # a Symptom line starts the next row
                values.append(["", "", ""])
            values[-1][field] = found[1]
        elif kind == "spec":
            values.append([found[0], *split_value_unit(found[1])])
        elif kind == "layout":
            groups[-1] = list(found)
        else:
            values.append(found[0])
    heads = {"trouble": _TROUBLE_HEAD, "spec": _SPEC_HEAD}
    out = []
    for kind, *content in groups:
        if kind in heads:
            out.append(("table", heads[kind], content[0]))
        elif kind == "para":  # the text layer has no paragraph breaks, so a page's prose lines make one paragraph
            out.append(("para", " ".join(content[0]), None))
        elif kind in ("ol", "ul"):
            out.append((kind, content[0], []))
        else:
            out.append((kind, *content))
    return out


def page_section(lines: list, untitled: str = "page") -> tuple[list[str], list[tuple]]:
    """(heading parts, elements) of a page's non-blank lines: the first line is its heading (`untitled` when the
    page starts with a table)."""
    if not isinstance(lines[0], str):
        return [untitled], page_elements(lines, False)
    parts = re.split(r"\s+[-–—]\s+", lines[0])  # spaced dashes only: model codes like AQ-200 keep theirs
    word = parts[1] if len(parts) > 1 else parts[0]
    return parts, page_elements(lines[1:], word.lower().startswith("spec"))


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
