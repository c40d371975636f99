"""`finetune evaluate`: the base model + adapter on the val split, against the baseline stage's results.

Writes metrics/eval.json as {"baseline": {...}, "finetuned": {...}, "delta": {...}}, each with `overall` and one
entry per task, so `dvc metrics diff` shows per-task deltas between experiments.
"""

from __future__ import annotations

from pathlib import Path

import click

from stages.io import atomic_path, load_jsonl, load_params, log, write_json, write_jsonl, write_text


@click.command()
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--adapter", default="models/adapter", show_default=True)
@click.option("--val", "val_path", default="data/processed/val.jsonl", show_default=True)
@click.option("--baseline-predictions", default="data/eval/baseline_predictions.jsonl", show_default=True)
@click.option("--baseline-scores", default="data/eval/baseline_scores.json", show_default=True)
@click.option("--predictions", default="data/eval/finetuned_predictions.jsonl", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/eval.json", show_default=True)
@click.option("--report", "report_path", default="reports/eval.md", show_default=True)
@click.option("--plot", "plot_path", default="reports/eval_tasks.csv", show_default=True)
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def cli(
    base_path,
    adapter,
    val_path,
    baseline_predictions,
    baseline_scores,
    predictions,
    metrics_path,
    report_path,
    plot_path,
    params_path,
):
    """Score the fine-tuned model on val and compare with the baseline."""
    import json

    from stages.baseline import predict
    from stages.metrics import delta, score
    from stages.models import load_merged, load_tokenizer
    from stages.report import chart, markdown, plot_rows

    params = load_params(params_path)
    examples = load_jsonl(val_path)
    tokenizer = load_tokenizer(adapter, params["model"]["trust_remote_code"])
    model = load_merged(base_path, adapter, params["model"])
    rows = predict(model, tokenizer, examples, params["eval"], params["generate"]["refusal"], "fine-tuned")
    baseline = json.loads(Path(baseline_scores).read_text(encoding="utf-8"))
    finetuned = score(rows)
    result = {"baseline": baseline, "finetuned": finetuned, "delta": delta(finetuned, baseline)}

    write_jsonl(predictions, rows)
    write_json(metrics_path, result)
    write_text(plot_path, "\n".join(plot_rows(result)) + "\n")
    report = Path(report_path)
    png = report.with_suffix(".png")
    with atomic_path(png) as tmp:
        chart(result, tmp)
    write_text(
        report, markdown(result, load_jsonl(baseline_predictions), rows, params["eval"]["examples_per_task"], png.name)
    )
    o, d = finetuned["overall"], result["delta"]["overall"]
    log(
        "evaluate",
        f"rouge_l {o['rouge_l']:.3f} ({d['rouge_l']:+.3f} vs base), "
        f"exact_match {o['exact_match']:.3f} ({d['exact_match']:+.3f})",
    )
