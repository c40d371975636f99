"""Chat files checked by hand, outside the pipeline: the same per-example rules as validate, without GE.
Used by `finetune verify data` on a JSONL file (a record per line) or a JSON array (a record per element)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from finetune.documents.textfiles import json_elements, normalise_conversation
from finetune.io import InputError, json_line
from finetune.schema import answer_problems, example_problems, message_problems
from finetune.validation.frames import copy_number

PIPELINE_FIELDS = ("id", "task", "source")  # a record with all of these is held to the pipeline's example contract


def line_problems(raw: bytes) -> tuple[dict | None, list[str]]:
    """Parse one JSONL line; return the record (None if unreadable) and what is wrong with it."""
    try:
        record = json_line(raw)
    except ValueError as e:
        return None, [str(e)]
    return record, record_problems(record)


def record_problems(record: dict) -> list[str]:
    if all(f in record for f in PIPELINE_FIELDS):
        return example_problems(record)
    # A plain chat file (messages, alpaca or sharegpt, as extract reads it) only has to hold valid conversations.
    try:
        return message_problems(normalise_conversation(record))
    except ValueError as e:
        return [str(e)]


def messages_of(record: dict) -> list[dict]:
    return record["messages"] if all(f in record for f in PIPELINE_FIELDS) else normalise_conversation(record)


def parsed_records(path: Path) -> Iterator[tuple[int, str, dict | None, list[str]]]:
    """(line, label, record or None, problems) of each record; label is "" for a JSONL line, "element N: " in a JSON
    array. A JSON array that cannot be parsed further ends with its error as the last problem."""
    if path.suffix.lower() == ".json":
        try:
            for index, lineno, value in json_elements(path, str(path)):
                if not isinstance(value, dict):
                    yield lineno, f"element {index}: ", None, [f"expected a JSON object, got {type(value).__name__}"]
                    continue
                yield lineno, f"element {index}: ", value, record_problems(value)
        except InputError as e:
            yield e.line or 1, f"{e.where}: " if e.where else "", None, [e.message]
        return
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if raw.strip():
                yield lineno, "", *line_problems(raw)


def check_file(
    path: str | Path, tokenizer=None, max_seq_len: int | None = None, max_answer_chars: int | None = None
) -> tuple[int, list[tuple[int, str]]]:
    """Count the examples of a chat file and list its problems as (line, words), in line order: the rules of each
    record, degenerate answers (every assistant turn: over max_answer_chars, one phrase repeated), exact duplicates
    (up-sampled copies `id~k` excepted: balance makes them on purpose) and, with a tokenizer, the length.

    Read record by record, so one bad record (invalid UTF-8, broken JSON) is reported and the next is still read.
    """
    n, found = 0, []
    # (line, label, messages) of sound examples, for one batched tokenizer pass
    sound: list[tuple[int, str, list]] = []
    first_seen: dict[str, str] = {}  # the messages as canonical JSON -> where they first occurred
    for lineno, label, record, problems in parsed_records(Path(path)):
        n += 1
        found += [(lineno, label + p) for p in problems]
        if record is None or problems:
            continue
        messages = messages_of(record)
        sound.append((lineno, label, messages))
        for i, m in enumerate(messages):  # every assistant turn is an answer training learns, not only the last
            if m["role"] == "assistant":
                found += [
                    (lineno, f"{label}message {i} (assistant): {p}")
                    for p in answer_problems(m["content"], max_answer_chars, "--max-answer-chars")
                ]
        if copy_number(record.get("id")):
            continue
        key = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        if key in first_seen:
            found.append((lineno, f"{label}an exact duplicate: the same messages as {first_seen[key]}"))
        else:
            first_seen[key] = f"{label.rstrip(': ')} (line {lineno})" if label else f"line {lineno}"
    if tokenizer is not None and sound:
        from finetune.validation.frames import count_tokens

        lengths, errors = count_tokens(tokenizer, [m for _, _, m in sound])
        for k, (lineno, label, _) in enumerate(sound):
            if k in errors:
                found.append((lineno, label + errors[k]))
            elif max_seq_len is not None and lengths[k] > max_seq_len:
                found.append(
                    (
                        lineno,
                        f"{label}{lengths[k]} tokens with the chat template, more than --max-seq-len {max_seq_len}",
                    )
                )
    return n, sorted(found, key=lambda p: p[0])  # stable: a line's own problems keep their order
