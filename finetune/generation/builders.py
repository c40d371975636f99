"""Builders: one block + its task -> items (the facts a task asks about), with no corpus conventions in them.

An item holds the fields the task's question and answer templates fill in, the builder's own answer, its key points
and meta. Every block item gets the heading fields: `heading` (the block's own heading), `parent` (the one above),
`document` (the reader's document name, else the first heading), `section` (all below the first, " / "), `path`
(all, " / "), `part` (what a later part of a long section is about, else ""), `_lc` variants with a lower-case
first letter for mid-sentence use, and the named groups of the task's `heading`/`title` patterns. Which block is a procedure, which column is a row's key or
unit, what a column qualifies: decided by the block's structure and the task file's options, never by English words
in this file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from finetune.generation.taskfile import Select, Task

_ANCHOR = re.compile(r"\s*\{#[^}]*\}")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HEADER_UNIT = re.compile(r"^(?P<name>.*?)\s*[(\[](?P<unit>[^()\[\]]{1,12})[)\]]\s*$")
_WORD = re.compile(r"\w+")
_LETTER = re.compile(r"[^\W\d_]")
_SENTENCE_ENDS = ".!?。！？"
_LEAD_IN = ":："
_CLOSERS = "\"'”’»)]}*_`"
_PART = re.compile(r"#part=(\d+)$")
_EMPTY_CELL = {"", "-", "–", "—", "n/a"}
_NUMERIC = re.compile(r"^[<>≤≥~±+\-−]?\s*\d")  # a cell a unit applies to: "3.3", "-40", "≤ 20", "±0.5"
# A unit cell: short and no bare number ("V", "mA", "°C", "V/µs", "V AC, 50 Hz", "–"; not "3.3" or "1200").
_UNIT = re.compile(r"^(?![<>≤≥~±+\-−]?\s*\d[\d.,\s]*$).{1,16}$")


@dataclass(frozen=True)
class Item:
    fields: dict  # values for the {placeholders} of the task's questions and answer
    answer: str  # the builder's answer, used when the task gives no answer template
    meta: dict = field(default_factory=dict)  # facts for evaluate's format check (e.g. the unit)
    points: tuple[str, ...] = ()  # the natural key points: bullets, steps (task keypoints: items)
    history: tuple[dict, ...] = ()  # conversation: the turns before the question
    system: str | None = None  # conversation: its own system message


@functools.lru_cache(maxsize=1 << 16)  # every task reads every block's headings: clean each once
def clean(text: str) -> str:
    """A heading or term as plain words: anchors, link targets, emphasis and backticks gone."""
    text = _EMPHASIS.sub("", _LINK.sub(r"\1", _ANCHOR.sub("", text)))
    return " ".join(text.split())


def lower_first(s: str) -> str:
    # "Rated output" -> "rated output", but "VDD" and "CA-24C" stay: a capital second letter marks an abbreviation.
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() and not s[1:2].isdigit() else s


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def headings(block: dict) -> list[str]:
    parts = block.get("headings") or [p for p in block.get("title", "").split(" / ") if p.strip()]
    return [c for c in (clean(p) for p in parts) if c]


def _matches(pattern: str | None, text: str) -> dict | None:
    if pattern is None:
        return {}
    m = re.search(pattern, text)
    return None if m is None else {k: clean(v) for k, v in m.groupdict().items() if v is not None}


def heading_fields(block: dict, sel: Select | None) -> dict | None:
    """The heading fields of a block, or None when the task's heading/title pattern does not match it."""
    hs = headings(block) or [clean(block.get("title", ""))]
    # parent and section are "" for a document's own text: a question's "({parent})" then disappears whole.
    # The document's own name (the reader's `document`: metadata, a title heading or the file name) before its
    # first heading, which may be "Description": the one place generate reads a block's document.
    document = clean(block.get("document") or "") or hs[0]
    fields = {"heading": hs[-1], "parent": hs[-2] if len(hs) > 1 else "", "document": document}
    fields |= {"section": " / ".join(hs[1:]), "path": " / ".join(hs)}
    # A long section cut into parts (source `…#part=2`): each part needs its own question, or two parts would ask
    # the same thing with different answers (and the split could put them on both sides). It is asked by what it is
    # about (the block's `part`: its bold lead or first clause, "" for the first part, documents/parts.py); blocks
    # extracted before parts had one fall back to the part's number.
    part = _PART.search(block.get("source", ""))
    fields["part"] = clean(block["part"]) if "part" in block else part.group(1) if part else ""
    groups: dict = {}
    for pattern, text in ((sel.heading, hs[-1]), (sel.title, fields["path"])) if sel else ():
        found = _matches(pattern, text)
        if found is None:
            return None
        groups |= found
    fields |= groups
    return fields | {f"{k}_lc": lower_first(v) for k, v in fields.items() if isinstance(v, str)}


def _words(text: str) -> int:
    return len(text.split())


def selects(block: dict, sel: Select) -> bool:
    """Does the task read this block? Kind, required columns, sizes and patterns."""
    if block.get("kind") not in sel.kind:
        return False
    if sel.columns and not set(sel.columns) <= set(_columns(block)):
        return False
    if len(block.get("items") or []) < sel.min_items or _words(block.get("text", "")) < sel.min_words:
        return False
    return heading_fields(block, sel) is not None


def _columns(block: dict) -> list[str]:
    rows = block.get("rows") or []
    return list(block.get("columns") or (rows[0] if rows else []))


# --- the builders -----------------------------------------------------------------------------------------------


def section(block: dict, task: Task) -> list[Item]:
    fields = heading_fields(block, task.blocks)
    text = block.get("text", "").strip()
    if fields is None or not text:
        return []
    bullets = [i for i in block.get("items") or [] if isinstance(i, str) and i.strip()]
    listed = "\n".join(f"- {b}" for b in bullets) if bullets else text
    return [Item(fields | {"text": text, "bullets": listed}, text, points=tuple(bullets))]


def _starts_with(text: str, words: list[str]) -> bool:
    first = _WORD.search(text)
    return first is not None and first.group().casefold() in {w.casefold() for w in words}


def steps(block: dict, task: Task) -> list[Item]:
    """An ordered list that is a procedure: enough items, each (or a share of them) a sentence of some words, and
    (given the task's instruction words) a share of them starting with an instruction."""
    fields = heading_fields(block, task.blocks)
    items = [i.strip() for i in block.get("items") or [] if isinstance(i, str) and i.strip()]
    o = task.steps
    if fields is None or len(items) < o.min_items:
        return []
    if sum(_words(i) >= o.min_words for i in items) / len(items) < o.min_share:
        return []
    if o.instruction_words:
        if sum(_starts_with(clean(i), o.instruction_words) for i in items) / len(items) < o.instruction_share:
            return []
    lead = (block.get("lead") or "").strip()
    if o.lead and not lead:
        return []
    answer = "\n".join(f"{n}. {s}" for n, s in enumerate(items, start=1))
    return [Item(fields | {"lead": lead, "steps": answer}, answer, points=tuple(items))]


def _find(columns: list[str], candidates: list[str]) -> str | None:
    folded = {c.casefold(): c for c in columns}
    return next((folded[c.casefold()] for c in candidates if c.casefold() in folded), None)


def column_of(name: str) -> str:
    """A column name mid-sentence: "Supply voltage / Min" (a group over its sub-column) -> "supply voltage min"."""
    return lower_first(clean(name.replace(" / ", " ")))


def table(block: dict, task: Task) -> list[Item]:
    """Row key x value column -> cell, with the unit from a unit column or the column header."""
    fields = heading_fields(block, task.blocks)
    columns, o = _columns(block), task.table
    if fields is None or len(columns) < 2:
        return []
    unit_col = _find(columns, o.unit)
    rows = block.get("rows") or []
    if unit_col and not all(_UNIT.match(u) for r in rows if (u := (r.get(unit_col) or "").strip())):
        unit_col = None  # a column named Unit that holds values or prose is a value column like the others
    key = _find(columns, o.key) or next(c for c in columns if c != unit_col)
    if block.get("kind") == "table" and _history([row.get(key, "") for row in rows]):
        return []  # a version history ("v20.10.0 | Added the flag"): what changed when, no property of anything
    aside = [c for c in (_find(columns, [a]) for a in o.aside) if c and c != key]
    skip = {c.casefold() for c in o.skip}
    values = [c for c in columns if c not in (key, unit_col, *aside) and c.casefold() not in skip]
    # A column named by no word ("0", "168", "–": a PDF's aligned numbers read as a header) names nothing to ask.
    values = [c for c in values if _LETTER.search(clean(c))]
    qualifiers = {k.casefold(): v for k, v in o.qualifiers.items()}
    # A bracket holding a word another column is named by qualifies, it measures nothing: "Relative (latency)"
    # beside "Median latency (milliseconds)" is no count of latencies.
    heads = [(m["name"] if (m := _HEADER_UNIT.match(c)) and m["name"] else c) for c in columns]
    named = {w.casefold() for h in heads for w in _WORD.findall(h)}
    notes = re.compile(rf"^(?:{'|'.join(map(re.escape, o.notes))})\b", re.IGNORECASE) if o.notes else None
    out = []
    for row in rows:
        name = clean(row.get(key, ""))
        if not name or (notes and notes.match(name)):
            continue
        extra = [clean(row.get(a, "")) for a in aside if clean(row.get(a, ""))]
        label = f"{name} ({', '.join(extra)})" if extra else name
        for col in values:
            cell = " ".join(str(row.get(col, "")).split())
            if cell.casefold() in _EMPTY_CELL:
                continue
            m = _HEADER_UNIT.match(col)
            col_name, header_unit = (
                (m["name"], m["unit"]) if m and m["name"] and m["unit"].casefold() not in named else (col, "")
            )
            unit = (row.get(unit_col) or "").strip() if unit_col else header_unit
            # "VDD = 3.3 V" in a Conditions column is no value in mA, and a "–" unit is none
            unit = unit if _NUMERIC.match(cell) and unit.casefold() not in _EMPTY_CELL else ""
            # "Supply voltage / Max" (a two-row header, documents/tables.py): the sub-column is what qualifies
            sub = col_name.rpartition(" / ")[2]
            qualifier = qualifiers.get(col_name.casefold()) or qualifiers.get(sub.casefold())
            if qualifier:
                what = f"{qualifier} {lower_first(label)}"
            elif len(values) == 1:
                what = lower_first(label)
            else:
                what = f"{column_of(col_name)} of {label}"
            answer = cell if not unit or cell.endswith(unit) else f"{cell} {unit}"
            # "Max 5.5 V": the answer says which limit it is, in the table's own word (so it stays grounded in the
            # source); a task file wanting its own word writes `answer: "{qualifier} {value} {unit}"`.
            answer = f"{clean(sub)} {answer}" if qualifier else answer
            item_fields = {"row": lower_first(label), "row_text": label, "column": column_of(col_name)}
            item_fields |= {"value": cell, "unit": unit, "what": what, "qualifier": qualifier or ""}
            out.append(Item(fields | item_fields, answer, {"unit": unit}))
    return out


# A release as a table's key cell writes it: "v20.10.0", "2.0.5", "1.2.0-rc1", or a date ("2023-01-31", "31.01.2023").
_RELEASE = re.compile(r"^(?:v\d+(?:\.\d+)*|\d+\.\d+\.\d+\S*|\d{4}-\d{2}(?:-\d{2})?|\d{1,2}[./]\d{1,2}[./]\d{4})\b")
HISTORY_SHARE = 0.8  # of a table's key cells, releases: a version history (a stray "v2" key is no history)


def _history(keys: list[str]) -> bool:
    keys = [k.strip() for k in keys if k.strip()]
    return bool(keys) and sum(bool(_RELEASE.match(k)) for k in keys) >= HISTORY_SHARE * len(keys)


def _safe(name: str) -> str:
    """A column name as a placeholder: `{Pin_name}` for "Pin name"."""
    return re.sub(r"\W+", "_", name).strip("_")


def row(block: dict, task: Task) -> list[Item]:
    """A row (a CSV row, or each row of a table) through the task's templates over its columns; `each` fans out."""
    fields = heading_fields(block, task.blocks)
    if fields is None:
        return []
    required = task.blocks.columns if task.blocks else []
    out = []
    for r in block.get("rows") or []:
        cells = {k: " ".join(str(v).split()) for k, v in r.items()}
        if any(not cells.get(c) for c in required):
            continue
        base = fields | {_safe(k): v for k, v in cells.items()}
        if task.each is None:
            out.append(Item(base, ""))
            continue
        for part in (p.strip() for p in cells.get(task.each.column, "").split(task.each.separator)):
            if part:
                out.append(Item(base | {_safe(task.each.column): part}, ""))
    return out


def as_sentence(text: str) -> str:
    """A fragment as a sentence: a first word of lower-case letters capitalised ("prints the version" -> "Prints
    the version."), an end mark added where none is. A literal keeps its case ("`auto` colours", "/etc/x is");
    a text ending on a lead-in mark keeps it: what it led to is missing, and a full stop would hide that."""
    text = text.strip()
    first = text.split()[0].rstrip(",;:") if text else ""
    if first.replace("-", "").replace("'", "").isalpha() and first[:1].islower():
        text = text[:1].upper() + text[1:]
    core = text.rstrip(_CLOSERS).rstrip()
    # One token (a URL, a path, a value) is no sentence a full stop would make: it would only change the literal.
    if len(core.split()) > 1 and core[-1] not in _SENTENCE_ENDS + _LEAD_IN:
        text = text.rstrip(",; ") + "."
    return text


# One word, a <type> or a (number) alone; a link, a path or a number stays a value worth asking for.
_LONE_WORD = re.compile(r"[^\W\d_][\w'-]*|<[^<>\s]*>|\(\w+\)")


def definitions(block: dict, task: Task) -> list[Item]:
    """One item per entry whose term the task reads; a label ("NOTE") is no term, and the answer is a sentence."""
    fields = heading_fields(block, task.blocks)
    if fields is None:
        return []
    labels = {label.casefold() for label in task.labels}
    out = []
    for entry in block.get("items") or []:
        if not isinstance(entry, dict):
            continue
        term, definition = clean(entry.get("term", "")), " ".join(str(entry.get("definition", "")).split())
        if not (term and definition) or term.rstrip(" :").casefold() in labels:
            continue
        if _LONE_WORD.fullmatch(definition):
            continue  # "Ignored", "<string>", "(13)": a setting's value or a type, no definition to answer with
        if task.terms is None or re.search(task.terms, term):
            sentence = as_sentence(definition)
            item_fields = {"term": term, "definition": definition, "sentence": sentence}
            out.append(Item(fields | item_fields | {"definition_lc": lower_first(definition)}, sentence))
    return out


def code_sections(blocks: list[dict]) -> list[dict]:
    """The code blocks of one section (one source) as one block, in the order first seen: each with its own lead,
    `snippets` [{code, language, lead}]. A question made from the heading asks for all of them; asked once per
    block, it would have as many answers as the section has code blocks."""
    by_source: dict[str, dict] = {}
    for b in blocks:
        snippet = {k: b.get(k) or "" for k in ("code", "language", "lead")}
        if b.get("source") in by_source:
            by_source[b["source"]]["snippets"].append(snippet)
        else:
            by_source[b.get("source")] = b | {"snippets": [snippet]}
    return list(by_source.values())


def _code_item(fields: dict, snippets: list[dict], task: Task, howto: str) -> Item:
    leads = [(s.get("lead") or "").strip() for s in snippets]
    fenced = [f"```{s.get('language') or ''}\n{s['code'].rstrip()}\n```" for s in snippets]
    parts = [f"{lead}\n{f}" if lead else f for lead, f in zip(leads, fenced, strict=True)]
    for n in range(1, len(parts)):
        if task.code.max_chars and len("\n\n".join(parts[: n + 1])) > task.code.max_chars:
            snippets, leads, fenced, parts = snippets[:n], leads[:n], fenced[:n], parts[:n]
            break
    answer = "\n\n".join(parts)
    item_fields = {
        "code": "\n\n".join(s["code"].rstrip() for s in snippets),
        "language": snippets[0].get("language") or "",
    }
    item_fields |= {
        "lead": next((lead for lead in leads if lead), ""),
        "fenced": "\n\n".join(fenced),
        "example": answer,
    }
    item_fields |= {"howto": howto, "howto_lc": lower_first(howto)}
    return Item(fields | item_fields, answer)


def _instruction_lead(lead: str, words: list[str]) -> str:
    """A lead that is one instruction ending on its lead-in mark ("Add your shell settings:") as a goal ("Add your
    shell settings"); "" for any other lead (a statement, several sentences, no lead-in mark)."""
    one = " ".join(clean(lead).split())
    if not one or one[-1] not in _LEAD_IN or len(sentences(one)) > 1 or not _starts_with(one, words):
        return ""
    if not one.split()[0].rstrip(",").isalpha():
        return ""  # "Let's say …" is no instruction to let: the verb is a whole word
    return one.rstrip(_LEAD_IN).rstrip()


def code(block: dict, task: Task) -> list[Item]:
    """A section's code examples, each fenced after its lead sentence: asked from the heading, never from a lead
    pasted into a template ("How do I let's suppose …?"). An example whose lead is one instruction ("Add your shell
    settings:") is a goal of its own: its own item, its `heading` and `howto` that instruction ("How do I add your
    shell settings?"). The rest of the section's examples are one item, `howto` the heading when it starts with one
    of the task's instruction words ("Add a link": "How do I add a link?"), else "". Merged into one item, a
    section's instruction-led examples were a weak question ("an example for Examples") and too few examples for
    balance (cli_tool's CODE: 13 -> 4, which capped every other task at twice its upsampled count)."""
    fields = heading_fields(block, task.blocks)
    snippets = [s for s in block.get("snippets") or [block] if (s.get("code") or "").strip()]
    if fields is None or not snippets:
        return []
    words = task.code.instruction_words
    goals = [_instruction_lead(s.get("lead") or "", words) for s in snippets]
    out = []
    for snippet, goal in zip(snippets, goals, strict=True):
        if goal:
            own = fields | {"heading": goal, "heading_lc": lower_first(goal)}
            out.append(_code_item(own, [snippet], task, goal))
    rest = [s for s, goal in zip(snippets, goals, strict=True) if not goal]
    if rest and not (task.code.lead and not any((s.get("lead") or "").strip() for s in rest)):
        howto = fields["heading"] if _starts_with(fields["heading"], words) else ""
        out.append(_code_item(fields, rest, task, howto))
    return out


# No tokenizer here (generate does not load the model), so a conversation's history is bounded in characters, at the
# 3 characters a token that params.yaml sizes extract.max_chars by (the tiny tokenizer measures 3.9 on prose, a real
# one 4 or more): what is kept then fits model.max_seq_len with room for the system prompt and the chat template, and
# validate measures each example exactly.
HISTORY_CHARS_PER_TOKEN = 3


def conversation(block: dict, task: Task, max_seq_len: int | None = None) -> list[Item]:
    """One item per assistant turn, with the turns before it as history and the file's own system message.

    With max_seq_len, the history is the latest whole exchanges that fit in max_seq_len * HISTORY_CHARS_PER_TOKEN
    characters with the question and the answer: the examples of a 10,000-turn conversation then grow linearly with
    its turns, not with their square (the whole history made a 751 KB file 1.94 GB of examples).
    """
    messages = [m for m in block.get("messages") or [] if isinstance(m, dict)]
    system = next((m["content"] for m in messages[:1] if m.get("role") == "system"), None)
    turns = [m for m in messages if m.get("role") != "system"]
    out = []
    for j, m in enumerate(turns):
        if m.get("role") != "assistant" or j == 0 or turns[j - 1].get("role") != "user":
            continue
        question, start = turns[j - 1]["content"], 0
        if max_seq_len:  # walk back an exchange (user, assistant) at a time while it fits
            room, start = max_seq_len * HISTORY_CHARS_PER_TOKEN - len(question) - len(m["content"]), j - 1
            while start >= 2 and (cost := len(turns[start - 2]["content"]) + len(turns[start - 1]["content"])) <= room:
                room, start = room - cost, start - 2
        history = tuple({"role": t["role"], "content": t["content"]} for t in turns[start : j - 1])
        out.append(Item({"question": question}, m["content"], {"turn": j // 2 + 1}, history=history, system=system))
    return out


BUILDERS = {
    "section": section,
    "steps": steps,
    "table": table,
    "row": row,
    "definitions": definitions,
    "code": code,
    "conversation": conversation,
}

# The builder made for each block kind: what a task file needs to read blocks of a kind no task of it reads.
BUILDER_OF_KIND = {
    "section": "section",
    "list": "steps",
    "table": "table",
    "row": "row",
    "definitions": "definitions",
    "code": "code",
    "qa": "conversation",
}
