"""`finetune report`: the whole run on one offline HTML page, reports/index.html.

Data (blocks per source kind, examples per task before and after balancing, rejects, the validation result with a
link to the Data Docs), training (curves, best epoch, throughput, cost) and evaluation (per-task scores of both
models, answers side by side with the reference). The page needs no network: open it from disk.

    finetune report                   # from the repository root, after `dvc repro`
    xdg-open reports/index.html
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import log, write_text
from finetune.params import load_params, params_option


@click.command()
@click.option("--extract", default="metrics/extract.json", show_default=True)
@click.option("--rejects", default="metrics/rejects.json", show_default=True)
@click.option("--generate", default="metrics/generate.json", show_default=True)
@click.option("--balance", default="metrics/balance.json", show_default=True)
@click.option("--validation", default="metrics/validation.json", show_default=True)
@click.option("--data-docs", default="reports/validation", show_default=True, help="Linked to, not read.")
@click.option("--train", default="metrics/train.json", show_default=True)
@click.option("--curves", default="metrics/train", show_default=True, help="The DVCLive folder of train.")
@click.option("--eval", "eval_path", default="metrics/eval.json", show_default=True)
@click.option("--baseline-predictions", default="data/eval/baseline_predictions.jsonl", show_default=True)
@click.option("--predictions", default="data/eval/finetuned_predictions.jsonl", show_default=True)
@click.option("--output", default="reports/index.html", show_default=True)
@click.option("--name", default="", help="A title for the run, e.g. the domain.")
@params_option
def cli(
    extract,
    rejects,
    generate,
    balance,
    validation,
    data_docs,
    train,
    curves,
    eval_path,
    baseline_predictions,
    predictions,
    output,
    name,
    params_path,
):
    """Write the run report: one self-contained HTML page."""
    from finetune.evaluation.html import page
    from finetune.evaluation.runfiles import RunFiles, load_run

    params = load_params(params_path)
    files = RunFiles(
        *(
            Path(p)
            for p in (extract, rejects, generate, balance, validation, data_docs, train, curves, eval_path)
            + (baseline_predictions, predictions)
        )
    )
    run = load_run(files, name)
    out = Path(output)
    write_text(out, page([run], out.parent, params.eval.examples_per_task))
    log("report", f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
