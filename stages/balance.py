"""`finetune balance`: a train/val split grouped by source, per-task balancing of train, val cut per task in step
with train (finetune.generation.splits)."""

from __future__ import annotations

import click

from finetune.generation.splits import run
from finetune.io import InputError, load_records, log, write_json, write_jsonl, write_text
from finetune.params import load_params, params_option


@click.command()
@click.option("--input", "input_path", required=True, help="e.g. data/interim/heating/examples.jsonl")
@click.option("--train", "train_path", required=True)
@click.option("--val", "val_path", required=True)
@click.option("--metrics", "metrics_path", required=True)
@click.option("--plot", "plot_path", required=True, help="e.g. reports/heating/task_distribution.csv")
@params_option
def cli(input_path, train_path, val_path, metrics_path, plot_path, params_path):
    """Split by source, then balance the train split's tasks."""
    params = load_params(params_path)
    try:
        examples = load_records(input_path, ("id", "task", "source"), "an example")
        train, val, report = run(examples, params.balance, params.split)
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
    if report["n_val_cut"]:
        cut = {
            t: f"{n} -> {report['val'].get(t, 0)}" for t, n in report["val_before"].items() if n > report["val_cap"][t]
        }
        log("balance", f"cut val in step with train (split.val_fraction of each task's train + val): {cut}")
    log(
        "balance",
        f"train {len(train)} (ratio {report['ratio_before']:.2f} -> {report['ratio_after']:.2f}), val {len(val)} "
        f"({report['val_share']:.0%} of train's distinct examples + val; the split held out "
        f"{report['split_source_share']:.0%} of the sources)",
    )
