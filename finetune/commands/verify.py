"""Check files by hand, outside the pipeline: the same per-example rules as `finetune validate`, without GE.

    finetune verify data my_chats.jsonl
    finetune verify data data/processed/train.jsonl --model models/base --max-seq-len 384

Each problem is one `PATH:LINE: what is wrong` line on stdout, so editors and grep can jump to it; the count goes
to stderr and the exit code is 1 when anything is wrong.
"""

from __future__ import annotations

import click

from finetune.validation.records import check_file


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
        from finetune.training.models import load_tokenizer

        tokenizer = load_tokenizer(model)
    n, problems = check_file(path, tokenizer, max_seq_len)
    for lineno, problem in problems:
        click.echo(f"{path}:{lineno}: {problem}")
    click.echo(f"{n} examples, {len(problems)} problems", err=True)
    if problems:
        raise SystemExit(1)
