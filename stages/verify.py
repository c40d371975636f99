"""Check files by hand, outside the pipeline: the same per-example rules as `finetune validate`, without GE.

    finetune verify data my_chats.jsonl
    finetune verify data data/processed/train.jsonl --model models/base --max-seq-len 384

Each problem is one `PATH:LINE: what is wrong` line on stdout, so editors and grep can jump to it; the count goes
to stderr and the exit code is 1 when anything is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from stages.schema import example_problems, message_problems

PIPELINE_FIELDS = ("id", "task", "source")  # a record with all of these is held to the pipeline's example contract


def line_problems(raw: bytes) -> tuple[dict | None, list[str]]:
    """Parse one JSONL line; return the record (None if unreadable) and what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [f"not valid UTF-8 ({e.reason} at byte {e.start} of the line)"]
    try:
        record = json.loads(text.rstrip("\r\n"))  # with the newline, a cut-off line reports column 1
    except json.JSONDecodeError as e:
        return None, [f"malformed JSON: {e.msg} at column {e.colno}"]
    if not isinstance(record, dict):
        return None, [f"expected a JSON object, got {type(record).__name__}"]
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
        from stages.validate import count_tokens  # no GE: validate imports it only when checks run

        lengths, errors = count_tokens(tokenizer, [m for _, m in sound])
        for k, (lineno, _) in enumerate(sound):
            if k in errors:
                found.append((lineno, errors[k]))
            elif max_seq_len is not None and lengths[k] > max_seq_len:
                found.append(
                    (lineno, f"{lengths[k]} tokens with the chat template, more than --max-seq-len {max_seq_len}")
                )
    return n, sorted(found, key=lambda p: p[0])  # stable: a line's own problems keep their order


@click.group("verify")
def cli():
    """Check files by hand, outside the pipeline."""


@cli.command("data")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Tokenizer directory: also check that its chat template renders each example.",
)
@click.option("--max-seq-len", type=click.IntRange(min=1), help="Longest example in tokens (needs --model).")
def data(path, model, max_seq_len):
    """Check a chat JSONL file: roles, alternation, non-empty string contents, and token length with --model."""
    if max_seq_len is not None and model is None:
        raise click.UsageError("--max-seq-len needs --model: length is counted with its tokenizer and chat template")
    tokenizer = None
    if model is not None:
        from stages.validate import load_tokenizer

        tokenizer = load_tokenizer(model)
    n, problems = check_file(path, tokenizer, max_seq_len)
    for lineno, problem in problems:
        click.echo(f"{path}:{lineno}: {problem}")
    click.echo(f"{n} examples, {len(problems)} problems", err=True)
    if problems:
        raise SystemExit(1)
