"""Chat JSONL files checked by hand, outside the pipeline: the same per-example rules as validate, without GE.
Used by `finetune verify data`."""

from __future__ import annotations

from pathlib import Path

from finetune.io import json_line
from finetune.schema import example_problems, message_problems

PIPELINE_FIELDS = ("id", "task", "source")  # a record with all of these is held to the pipeline's example contract


def line_problems(raw: bytes) -> tuple[dict | None, list[str]]:
    """Parse one JSONL line; return the record (None if unreadable) and what is wrong with it."""
    try:
        record = json_line(raw)
    except ValueError as e:
        return None, [str(e)]
    if all(f in record for f in PIPELINE_FIELDS):
        return record, example_problems(record)
    # A plain chat file (`{"messages": [...]}`) only has to hold valid conversations.
    return record, message_problems(record.get("messages"))


def check_file(path: str | Path, tokenizer=None, max_seq_len: int | None = None) -> tuple[int, list[tuple[int, str]]]:
    """Count the examples (non-blank lines) of a chat JSONL file and list its problems as (line, words), in line order.

    Read as bytes line by line, so one bad line (invalid UTF-8, broken JSON) is reported and the next is still read.
    """
    n, found = 0, []
    sound: list[tuple[int, list]] = []  # (line, messages) of sound examples, for one batched tokenizer pass
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            n += 1
            record, problems = line_problems(raw)
            found += [(lineno, p) for p in problems]
            if record is not None and not problems:
                sound.append((lineno, record["messages"]))
    if tokenizer is not None and sound:
        from finetune.validation.frames import count_tokens

        lengths, errors = count_tokens(tokenizer, [m for _, m in sound])
        for k, (lineno, _) in enumerate(sound):
            if k in errors:
                found.append((lineno, errors[k]))
            elif max_seq_len is not None and lengths[k] > max_seq_len:
                found.append(
                    (lineno, f"{lengths[k]} tokens with the chat template, more than --max-seq-len {max_seq_len}")
                )
    return n, sorted(found, key=lambda p: p[0])  # stable: a line's own problems keep their order
