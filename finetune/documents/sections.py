"""One section of a document (a heading's content, or a page) as blocks: the shared core of every document reader.

A section is a list of elements: ("para", text), ("table", header, rows), ("ol", items) or ("ul", items). Markdown
and HTML (stages' extract through documents.readers), PDF pages and scanned pages all end up here, so a table or a
numbered list becomes the same kind of block whatever file it came from. The Block contract is in finetune.schema.
"""

from __future__ import annotations

from pathlib import Path

from finetune.io import content_id

NO_UNIT = {"", "-", "–", "—"}  # a unit cell saying "dimensionless" (the COP rows); left out of the rendered text


def clean(text: str) -> str:
    """Collapse runs of spaces inside each line; the line structure stays."""
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def one_line(text: str) -> str:
    return " ".join(text.split())


def block(source: str, kind: str, title: str, text: str, **extra) -> dict:
    record = {"id": content_id(source, kind, title, text), "source": source, "kind": kind, "title": title}
    return record | {"text": text, **extra}


def table_rows(header: list[str], rows: list[list[str]]) -> list[dict]:
    keys = [one_line(h) or f"Column {i + 1}" for i, h in enumerate(header)]
    keys = [k if k not in keys[:i] else f"{k} ({i + 1})" for i, k in enumerate(keys)]
    out = []
    for cells in ([one_line(c) for c in row] for row in rows):
        keys += [f"Column {i + 1}" for i in range(len(keys), len(cells))]  # a row longer than the header
        if any(cells):
            out.append({k: cells[i] if i < len(cells) else "" for i, k in enumerate(keys)})
    return out


def render_row(row: dict) -> str:
    if [k.lower() for k in row][:2] == ["parameter", "value"] and len(row) <= 3:
        p, v, *unit = row.values()
        return f"{p}: {v} {''.join(u for u in unit if u not in NO_UNIT)}".rstrip()
    return "; ".join(f"{k}: {v}" for k, v in row.items() if v)


def section_blocks(source: str, title: str, heading: str, elements: list[tuple], min_chars: int) -> list[dict]:
    """Blocks of one section in document order; the first word of `heading` (the nearest one) can make it wiring."""
    wiring = heading.lower().startswith("wiring")
    out, prose, notes, prose_at = [], [], [], None
    for kind, *content in elements:
        if kind == "table" and (rows := table_rows(*content)):
            kind = "troubleshooting" if any("symptom" in k.lower() for k in rows[0]) else "spec_table"
            out.append(block(source, kind, title, "\n".join(map(render_row, rows)), rows=rows))
        elif kind == "ol" and (items := [clean(i) for i in content[0] if i.strip()]):
            text = "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1))
            out.append(block(source, "procedure", title, text, items=items))
        elif kind in ("ul", "para"):
            # Paragraphs and bullets of a section make one block, placed where its first paragraph was.
            prose_at = len(out) if prose_at is None else prose_at
            items = [clean(i) for i in content[0] if i.strip()] if kind == "ul" else []
            notes += items
            prose.append("\n".join(f"- {i}" for i in items) if kind == "ul" else clean(content[0]))
    text = "\n\n".join(p for p in prose if p)
    if not text:
        return out  # no prose at all: nothing to place, even with min_chars 0
    if wiring and (notes or len(text) >= min_chars):
        # The bullets are the wiring notes; an intro or a warning paragraph around them stays in `text`.
        out.insert(prose_at, block(source, "wiring", title, text, items=notes or [p for p in prose if p]))
    elif not wiring and len(text) >= min_chars:
        out.insert(prose_at, block(source, "prose", title, text))
    return out


def heading_blocks(rel: str, events: list[tuple], min_chars: int) -> list[dict]:
    """Cut ("h", level, text) events and the elements between them into sections, then blocks (Markdown, HTML)."""
    out, heads, elements = [], [], []
    for ev in [*events, ("h", 0, "")]:  # the sentinel heading flushes the last section
        if ev[0] != "h":
            elements.append(ev)
            continue
        if elements:
            # The H1 is the document's title: locations leave it out unless it is all there is.
            loc = [t for lvl, t in heads if lvl > 1] or [t for _, t in heads] or [Path(rel).stem]
            title = " / ".join(t for _, t in heads) or Path(rel).stem
            out += section_blocks(f"{rel}#h={'/'.join(loc)}", title, loc[-1], elements, min_chars)
            elements = []
        heads = [h for h in heads if h[0] < ev[1]] + [(ev[1], one_line(ev[2]))]
    return out
