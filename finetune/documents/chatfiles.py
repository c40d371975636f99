"""Chat data a team brings, one `qa` block per conversation: a JSONL file (a record per line) or a JSON array file
(alpaca_data.json style, a record per element). Records are OpenAI messages, alpaca or sharegpt
(finetune.documents.textfiles.normalise_conversation).

A block keeps every turn in order and the record's own system message: generation makes one example per assistant
turn with its history, so nothing is cut here. A bad record goes to `reject` naming the file, its line and (for a JSON
array) the element; a file that cannot be parsed at all raises InputError.
"""

from __future__ import annotations

from pathlib import Path

from finetune.documents.sections import block, one_line
from finetune.documents.textfiles import (
    check_text_file,
    conversation,
    json_elements,
    raw_lines,
    record_messages,
    too_long,
)
from finetune.io import InputError

TITLE_CHARS = 80  # a title is for people scanning blocks.jsonl: the first question, cut to one short line


def qa_block(source: str, rel: str, messages: list[dict]) -> dict:
    first = one_line(next(m["content"] for m in messages if m["role"] == "user"))
    title = first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"
    text = "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages)
    # A conversation sits under no heading; like a CSV row, its heading path is the file it came from.
    return block(source, "qa", title, text, headings=[Path(rel).stem], messages=messages)


def jsonl_blocks(path: Path, rel: str, reject) -> list[dict]:
    check_text_file(path, rel)
    out, records = [], 0
    for lineno, raw in raw_lines(path):
        if raw is not None and not raw.strip():
            continue
        records += 1
        if raw is None:
            reject(too_long(rel, lineno))
            continue
        try:
            messages = conversation(raw)
        except ValueError as e:
            reject(InputError(rel, str(e), lineno))
            continue
        out.append(qa_block(f"{rel}#line={lineno}", rel, messages))
    if not records:
        raise InputError(rel, "no records, only blank lines")
    return out


def json_blocks(path: Path, rel: str, reject) -> list[dict]:
    """A JSON array of records. Sources are `#element=N` (from 0), not lines: a minified file is all on line 1."""
    out = []
    for index, lineno, value in json_elements(path, rel):
        try:
            messages = record_messages(value)
        except ValueError as e:
            reject(InputError(rel, str(e), lineno, f"element {index}"))
            continue
        out.append(qa_block(f"{rel}#element={index}", rel, messages))
    return out
