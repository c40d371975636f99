"""One section of a document (a heading's content, or a page) as blocks: the shared core of every document reader.

A section is a list of elements (finetune.documents.markup.html_events, documents.pages.page_elements):
("para", text, term), ("ul"|"ol", items, terms), ("table", header, rows), ("code", code, language),
("dl", pairs). Markdown, HTML, PDF pages and scanned pages all end up here, so a table or a numbered list becomes
the same kind of block whatever file it came from. Kinds are structural; the block contract is in finetune.schema.
"""

from __future__ import annotations

import re
from pathlib import Path

from finetune.documents.markup import FLAGS
from finetune.documents.parts import FENCE, LEAD_IN, cut_spans, leads_in, part_labels  # noqa: F401
from finetune.io import content_id

NO_UNIT = {"", "-", "–", "—"}  # a unit cell saying "dimensionless" (the COP rows); left out of the rendered text


def clean(text: str) -> str:
    """Collapse runs of spaces inside each line; the line structure stays."""
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def one_line(text: str) -> str:
    return " ".join(text.split())


def block(source: str, kind: str, title: str, text: str, headings: list[str] | None = None, **extra) -> dict:
    """A block record; `headings` defaults to the file's stem (a Q&A line, a text paragraph have no headings)."""
    headings = headings if headings is not None else [Path(source.split("#")[0]).stem]
    record = {"id": content_id(source, kind, title, text), "source": source, "kind": kind, "title": title}
    return record | {"headings": headings, "text": text, **extra}


def table_rows(header: list[str], rows: list[list[str]]) -> list[dict]:
    keys = [one_line(h) or f"Column {i + 1}" for i, h in enumerate(header)]
    keys = [k if k not in keys[:i] else f"{k} ({i + 1})" for i, k in enumerate(keys)]
    out = []
    for cells in ([one_line(c) for c in row] for row in rows):
        keys += [f"Column {i + 1}" for i in range(len(keys), len(cells))]  # a row longer than the header
        if any(cells):
            out.append({k: cells[i] if i < len(cells) else "" for i, k in enumerate(keys)})
    return out


def render_row(row: dict, key_value: tuple[str, ...] = ()) -> str:
    # A row of extract.key_value_columns (a page's `Name: 24 kW` lines come back as such rows, documents/pages.py;
    # a Markdown table may have the same header): rendered as such lines are written.
    names = [k.casefold() for k in key_value[:2]]
    if len(names) == 2 and [k.casefold() for k in row][:2] == names and len(row) <= 3:
        p, v, *unit = row.values()
        return f"{p}: {v} {''.join(u for u in unit if u not in NO_UNIT)}".rstrip()
    return "; ".join(f"{k}: {v}" for k, v in row.items() if v)


def section_block(
    source: str, title: str, headings: list[str], text: str, items: list[tuple[int, str]], max_chars: int
) -> list[dict]:
    """The `section` block(s) of one section: one, or `#part=N` parts when its text is over max_chars, each with
    `part`, what it is about (documents.parts.part_labels: "" for the first). `items` are (offset in text, bullet
    item); each part keeps the items it holds."""
    # A fence stays whole here (cut_spans): the code is its own block too, and generate cuts whatever is still over
    # the model's token budget, a fence between its lines (finetune/generation/budget.py).
    spans = cut_spans(text, max_chars) if max_chars else [(0, len(text))]
    if len(spans) == 1:
        return [block(source, "section", title, text, headings, items=[i for _, i in items])]
    # A part that is code alone is no section of its own: its code block is there for the code tasks.
    spans = [(a, b) for a, b in spans if FENCE.sub("", text[a:b]).strip()]
    parts = [text[a:b].strip() for a, b in spans]
    return [
        block(
            f"{source}#part={n}",
            "section",
            title,
            p,
            headings,
            items=[i for at, i in items if a <= at < b],  # by offset: an item's words may recur in another part
            part=label,
        )
        for n, ((a, b), p, label) in enumerate(zip(spans, parts, part_labels(parts), strict=True), 1)
    ]


def _definitions(pairs: list) -> bool:
    """A list or a run of paragraphs is a glossary when every entry has a term: two or more, or options."""
    return bool(pairs) and all(pairs) and (len(pairs) > 1 or bool(FLAGS.fullmatch(pairs[0][0])))


def _mark(marker: str, item: str) -> str:
    """A list item as Markdown: its later lines (a nested list, a code block) indented under the marker."""
    return marker + item.replace("\n", "\n" + " " * len(marker))


def section_blocks(
    source: str,
    title: str,
    headings: list[str],
    elements: list[tuple],
    min_chars: int,
    max_chars: int = 0,
    key_value: tuple[str, ...] = (),
) -> list[dict]:
    """Blocks of one section in document order; its prose (paragraphs, bullets) is one `section` block, placed where
    its first paragraph was, and kept when it has bullet items or at least min_chars of text. `key_value`: the
    columns of a key-value table (extract.key_value_columns), whose rows render as `Name: value unit` lines."""
    out, prose, prose_at, prev = [], [], None, None
    # Runs of glossary paragraphs (`**Term**: text`) are found first, so they are not also prose.
    runs, run = set(), []
    for i, el in enumerate([*elements, ("end", "", None)]):
        if el[0] == "para" and len(el) > 2 and el[2]:
            run.append(i)
            continue
        if _definitions([elements[j][2] for j in run]):
            runs.update(run)
        run = []
    prose_chars = 0  # of paragraphs and bullets: code and what a lead-in led to are no prose of their own
    for i, (kind, *content) in enumerate(elements):
        lead = prev[1] if prev and prev[0] == "para" else ""
        prev = (kind, *content)
        made = len(out)
        terms = content[1] if kind in ("ul", "ol") and len(content) > 1 else []
        if kind == "table" and (rows := table_rows(*content)):
            # The last row has every column: a row longer than the header adds "Column N" to it and the rows after.
            text = "\n".join(render_row(row, key_value) for row in rows)
            out.append(block(source, "table", title, text, headings, columns=list(rows[-1]), rows=rows))
        elif kind == "code" and content[0].strip():
            code, lang = content
            out.append(
                block(source, "code", title, f"```{lang}\n{code}\n```", headings, code=code, language=lang, lead=lead)
            )
        elif (kind == "dl" and content[0]) or (kind == "ul" and _definitions(terms)) or i in runs:
            pairs = content[0] if kind == "dl" else terms if kind == "ul" else [content[1]]
            entries = [{"term": t, "definition": d} for t, d in pairs]
            if out and out[-1]["kind"] == "definitions" and i - 1 in runs and i in runs:
                entries = out.pop()["items"] + entries  # the next paragraph of the same run
            text = "\n".join(f"{e['term']}: {e['definition']}" for e in entries)
            out.append(block(source, "definitions", title, text, headings, items=entries))
        elif kind == "ol" and (steps := [s.strip() for s in content[0] if s.strip()]):
            text = "\n".join(_mark(f"{n}. ", s) for n, s in enumerate(steps, 1))
            out.append(block(source, "list", title, text, headings, items=steps, lead=lead))
        elif kind == "ul" and (bullets := [b.strip() for b in content[0] if b.strip()]):
            prose_at = len(out) if prose_at is None else prose_at
            prose.append(bullets)
            prose_chars += sum(map(len, bullets))
        elif kind == "para" and content[0].strip():
            prose_at = len(out) if prose_at is None else prose_at
            prose.append(content[0].strip() if "```" in content[0] else clean(content[0]))
            prose_chars += len(prose[-1])
        # The prose keeps its code, fenced where it was, and what a lead-in ("… as follows:") led to: without them
        # an answer stops on the lead-in, or explains code it does not show. They stay blocks of their own too.
        if prose and len(out) > made and (kind == "code" or leads_in(prose[-1])):
            prose.append(out[-1]["text"])
    # The prose text, and where each bullet item starts in it (a part of a long section keeps its own items).
    text, items = "", []
    for p in prose:
        text += "\n\n" if text else ""
        if isinstance(p, str):
            text += p
            continue
        for b in p:
            items.append((len(text), b))
            text += _mark("- ", b) + "\n"
        text = text[:-1]
    if text and (items or prose_chars >= min_chars):
        out[prose_at:prose_at] = section_block(source, title, headings, text, items, max_chars)
    return out


_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
# What follows an entry of a printed table of contents: a dot leader and/or a page number ("Wiring ..... 12").
_PAGE_REF = re.compile(r"(?:\s*[.·…_]{2,}\s*|\s+)\d+$")


def is_contents(elements: list[tuple], names: set[str]) -> bool:
    """Whether a section is a table of contents: three or more lines, four in five of them the document's own
    headings (links to them read as their text) or entries ending in a dot leader and page number. Structural, so
    no word of any language decides it."""
    lines = []
    for kind, *content in elements:
        if kind in ("ul", "ol"):
            lines += [ln for item in content[0] for ln in item.splitlines()]
        elif kind == "para":
            lines += content[0].splitlines()
        else:
            return False  # a table, code or glossary is content, whatever lines come with it
    lines = [_MARKER.sub("", ln).strip() for ln in lines if ln.strip()]

    def entry(line: str) -> bool:
        bare = _PAGE_REF.sub("", line).strip(" .").casefold()
        return bare in names or bool(re.search(r"[.·…_]{3,}\s*\d+$", line))

    return len(lines) >= 3 and sum(map(entry, lines)) >= 0.8 * len(lines)


def heading_blocks(
    rel: str, events: list[tuple], min_chars: int, max_chars: int = 0, key_value: tuple[str, ...] = ()
) -> list[dict]:
    """Cut ("h", level, text) events and the elements between them into sections, then blocks (Markdown, HTML).
    A <details> is a subsection of the section it is in, named by its summary. A table of contents (is_contents)
    is no subject: its section gives no blocks."""
    out, heads, elements, outer = [], [], [], []
    names = {one_line(ev[2]).strip(" .").casefold() for ev in events if ev[0] == "h"}
    for ev in [*events, ("h", 0, "")]:  # the sentinel heading flushes the last section
        if ev[0] not in ("h", "details", "/details"):
            elements.append(ev)
            continue
        if elements and not is_contents(elements, names):
            # The H1 is the document's title: locations leave it out unless it is all there is.
            loc = [t for lvl, t in heads if lvl > 1] or [t for _, t in heads] or [Path(rel).stem]
            path = [t for _, t in heads] or [Path(rel).stem]
            where, title = f"{rel}#h={'/'.join(loc)}", " / ".join(path)
            out += section_blocks(where, title, path, elements, min_chars, max_chars, key_value)
        elements = []
        if ev[0] == "details":
            outer.append(heads)
            heads = [*heads, ((heads[-1][0] if heads else 1) + 1, one_line(ev[1]))]
        elif ev[0] == "/details":
            heads = outer.pop() if outer else heads
        else:
            heads = [h for h in heads if h[0] < ev[1]] + [(ev[1], one_line(ev[2]))]
    return out
