"""A page of plain text lines (a PDF text layer, or OCR of a scanned page) as one section's elements, for extract.

A page has no markup, so its structure comes from the lines themselves. The first line names the section:
`Aquis - Specifications - AQ-200` (family, heading word, topic); then `1. …` is a step, `- …` a note,
`Symptom:`/`Cause:`/`Remedy:` a troubleshooting row, `Parameter: 24 kW` a spec row, anything else prose.
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


def page_elements(lines: list[str], specs_page: bool) -> list[tuple]:
    """The body lines of a page as section elements: ("table", header, rows), ("ol"|"ul", items), ("para", text)."""
    merged: list[str] = []
    for line in lines:
        prev = merged and line_kind(merged[-1], specs_page)[0]
        wrapped = line[:1].islower() or not re.search(r"[.!?)]$", merged[-1] if merged else ".")
        if prev in ("ol", "ul", "trouble") and line_kind(line, specs_page)[0] == "para" and wrapped:
            merged[-1] += " " + line  # a step or note the layout wrapped onto the next line
        else:
            merged.append(line)
    groups: list[list] = []  # [kind, values] for each run of lines of one kind
    for kind, found in (line_kind(line, specs_page) for line in merged):
        if not groups or groups[-1][0] != kind:
            groups.append([kind, []])
        values = groups[-1][1]
        if kind == "trouble":
            field = ("symptom", "cause", "remedy").index(found[0])
            if field == 0 or not values or values[-1][field]:  # a Symptom line starts the next row
                values.append(["", "", ""])
            values[-1][field] = found[1]
        elif kind == "spec":
            values.append([found[0], *split_value_unit(found[1])])
        else:
            values.append(found[0])
    heads = {"trouble": _TROUBLE_HEAD, "spec": _SPEC_HEAD}
    # The text layer has no paragraph breaks, so a page's prose lines make one paragraph.
    return [
        ("table", heads[k], v) if k in heads else ("para", " ".join(v)) if k == "para" else (k, v) for k, v in groups
    ]


def page_section(lines: list[str]) -> tuple[str, str, list[tuple]]:
    """(title, heading word, elements) of a page's non-blank lines: the first line is its heading."""
    parts = re.split(r"\s+[-–—]\s+", lines[0])  # spaced dashes only: model codes like AQ-200 keep theirs
    word = parts[1] if len(parts) > 1 else parts[0]
    return " / ".join(parts), word, page_elements(lines[1:], word.lower().startswith("spec"))
