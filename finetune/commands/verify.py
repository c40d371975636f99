"""Check files by hand, outside the pipeline: the same per-example rules as `finetune validate`, without GE.

    finetune verify data my_chats.jsonl
    finetune verify data alpaca_data.json --max-answer-chars 2000
    finetune verify data data/processed/train.jsonl --model models/base --max-seq-len 1024

Each problem is one `PATH:LINE: what is wrong` line on stdout (`PATH:LINE: element N: …` in a JSON array), so
editors and grep can jump to it; the count goes to stderr and the exit code is 1 when anything is wrong.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import printable
from finetune.validation.records import check_file


@click.group("verify")
def cli():
    """Check files by hand, outside the pipeline."""


def default_max_answer_chars(params_path: str) -> int:
    """validate.max_answer_chars of the params file when there is one, so verify and validate agree; else the
    built-in default."""
    from finetune.params import Validate, load_params

    if Path(params_path).is_file():
        return load_params(params_path).validate_.max_answer_chars
    return Validate.model_fields["max_answer_chars"].default


@cli.command("data")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Tokenizer directory: also check that its chat template renders each example.",
)
@click.option("--max-seq-len", type=click.IntRange(min=1), help="Longest example in tokens (needs --model).")
@click.option(
    "--max-answer-chars",
    type=click.IntRange(min=1),
    help="Longest answer in characters [default: validate.max_answer_chars of --params].",
)
@click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    help="Where validate.max_answer_chars is read from; skipped when missing.",
)
def data(path, model, max_seq_len, max_answer_chars, params_path):
    """Check a chat file (JSONL, or a JSON array of records): roles, alternation, non-empty string contents,
    degenerate answers (one phrase repeated, over the length cap), exact duplicates, and token length with --model."""
    if max_seq_len is not None and model is None:
        raise click.UsageError("--max-seq-len needs --model: length is counted with its tokenizer and chat template")
    if max_answer_chars is None:
        max_answer_chars = default_max_answer_chars(params_path)
    tokenizer = None
    if model is not None:
        from finetune.training.models import load_tokenizer

        tokenizer = load_tokenizer(model)
    n, problems = check_file(path, tokenizer, max_seq_len, max_answer_chars)
    for lineno, problem in problems:
        click.echo(printable(f"{path}:{lineno}: {problem}"))  # one line each, whatever the file holds
    click.echo(f"{n} examples, {len(problems)} problems", err=True)
    if problems:
        raise SystemExit(1)
