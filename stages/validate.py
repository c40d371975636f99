"""`finetune validate`: the gate between balance and train. Great Expectations checks train/val; any failure stops DVC.

    finetune validate --train data/interim/heating/train.jsonl --val data/interim/heating/val.jsonl \
        --train-out data/processed/heating/train.jsonl --val-out data/processed/heating/val.jsonl \
        --metrics metrics/validation/heating.json --docs reports/heating/validation \
        --params params.yaml --params domains/heating/params.yaml

The checks are in finetune.validation: each split becomes a pandas frame with derived columns, each rule one named
GE expectation. The flat metrics JSON is the gate DVC diffs; the Data Docs HTML is for people. Only a passing run
writes the examples training reads (--train-out/--val-out): balance's split minus what `validate.on_overlong: drop`
left out.
"""

from __future__ import annotations

import click

from finetune.io import log, printable, read_json
from finetune.params import load_params, params_option
from finetune.validation.expectations import run


@click.command("validate")
@click.option("--train", "train_path", required=True, type=click.Path(), help="e.g. data/interim/heating/train.jsonl")
@click.option("--val", "val_path", required=True, type=click.Path())
@click.option(
    "--train-out",
    required=True,
    type=click.Path(),
    help="Train as checked: written only when every check passes.",
)
@click.option(
    "--val-out",
    required=True,
    type=click.Path(),
    help="Val as checked: written only when every check passes.",
)
@click.option("--model", default="models/base", show_default=True, type=click.Path(), help="Tokenizer directory.")
@click.option("--metrics", "metrics_path", required=True, type=click.Path())
@click.option("--docs", required=True, type=click.Path(), help="Data Docs site, e.g. reports/heating/validation.")
@click.option(
    "--quality",
    "quality_path",
    default=None,
    type=click.Path(),
    help="generate's counts of bad examples, e.g. metrics/quality/heating.json, checked against validate.quality.",
)
@params_option
def cli(train_path, val_path, train_out, val_out, model, metrics_path, docs, quality_path, params_path):
    """Check train/val with Great Expectations; exit non-zero (stopping `dvc repro`) if any expectation fails."""
    p = load_params(params_path)
    quality = read_json(quality_path, "generate's quality counts") if quality_path else None
    metrics, lines = run(
        train_path,
        val_path,
        model,
        metrics_path,
        docs,
        tasks=p.generate.tasks,
        max_seq_len=p.model.max_seq_len,
        max_ratio=p.balance.max_ratio,
        val_fraction=p.split.val_fraction,
        tolerance=p.validate_.val_fraction_tolerance,
        max_answer_chars=p.validate_.max_answer_chars,
        on_overlong=p.validate_.on_overlong,
        train_out=train_out,
        val_out=val_out,
        quality=quality,
        max_share=p.validate_.quality.max_share.model_dump(),
        on_exceed=p.validate_.quality.on_exceed,
    )
    passed = sum(e["success"] for e in metrics["expectations"].values())
    n = metrics["warnings"]
    warned = f" ({n} quality warning{'s' if n != 1 else ''})" if n else ""
    log(
        "validate",
        f"{passed}/{len(metrics['expectations'])} expectations passed{warned}; wrote {metrics_path} and {docs}/",
    )
    if not metrics["success"]:
        # Each failure line quotes examples (a source, a heading): escaped, so each stays one plain line.
        click.echo("\n".join(printable(line) for line in lines), err=True)
        raise click.ClickException(f"validation failed; see {docs}/index.html")
    log("validate", f"wrote {metrics['n_train']} train and {metrics['n_val']} val examples to {train_out}, {val_out}")
