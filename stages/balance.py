"""`finetune balance`: a train/val split grouped by source, then per-task balancing of train (finetune.generation.splits)."""

from __future__ import annotations

import click

from finetune.generation.splits import run
from finetune.io import InputError, load_jsonl, log, write_json, write_jsonl, write_text
from finetune.params import load_params, params_option


@click.command()
@click.option("--input", "input_path", default="data/interim/examples.jsonl", show_default=True)
@click.option("--train", "train_path", default="data/interim/train.jsonl", show_default=True)
@click.option("--val", "val_path", default="data/interim/val.jsonl", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/balance.json", show_default=True)
@click.option("--plot", "plot_path", default="reports/task_distribution.csv", show_default=True)
@params_option
def cli(input_path, train_path, val_path, metrics_path, plot_path, params_path):
    """Split by source, then balance the train split's tasks."""
    params = load_params(params_path)
    try:
        train, val, report = run(load_jsonl(input_path), params.balance, params.split)
    except ValueError as e:
        raise InputError(input_path, str(e)) from None
    for task, n in report["left_out_tasks"].items():
        log("balance", f"warning: left out task {task}: {n} train examples, balance.min_examples is "
            f"{params.balance.min_examples}")  # fmt: skip
    write_jsonl(train_path, train)
    write_jsonl(val_path, val)
    write_json(metrics_path, report)
    # One bar per (task, before/after), labelled so a task's two bars sit together in `dvc plots show`.
    rows = ["label,task,split,count"]
    for task in report["train_after"]:
        for when in ("before", "after"):
            rows.append(f"{task} {when},{task},{when},{report[f'train_{when}'][task]}")
    write_text(plot_path, "\n".join(rows) + "\n")
    log(
        "balance",
        f"train {len(train)} (ratio {report['ratio_before']:.2f} -> {report['ratio_after']:.2f}), "
        f"val {len(val)} ({report['val_share']:.0%} of the sources, {report['val_example_share']:.0%} of the examples)",
    )
