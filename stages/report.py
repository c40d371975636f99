"""`finetune report`: a domain's whole run on one offline HTML page, reports/<domain>/index.html.

Data (blocks per source kind, examples per task before and after balancing, rejects, the validation result with a
link to the Data Docs, the data-quality counts with their thresholds and worst examples), training (curves, best
epoch, throughput, cost) and evaluation (per-task scores of both
models, answers side by side with the reference). The page needs no network: open it from disk.

    dvc repro report@heating          # dvc.yaml passes every path
    xdg-open reports/heating/index.html
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import log, write_text
from finetune.params import load_params, params_option


@click.command()
@click.option("--extract", required=True, help="e.g. metrics/extract/heating.json")
@click.option("--rejects", required=True)
@click.option("--generate", required=True)
@click.option("--balance", required=True)
@click.option("--validation", required=True)
@click.option("--data-docs", required=True, help="Linked to, not read.")
@click.option("--train", required=True)
@click.option("--curves", required=True, help="The DVCLive folder of train, e.g. metrics/curves/heating.")
@click.option("--eval", "eval_path", required=True)
@click.option("--baseline-predictions", required=True)
@click.option("--predictions", required=True)
@click.option("--quality", default=None, help="generate's quality counts, e.g. metrics/quality/heating.json")
@click.option(
    "--quality-examples", default=None, help="Their worst examples, e.g. data/interim/heating/quality_examples.json"
)
@click.option(
    "--questions", default=None, help="evaluate's answers to the domain's questions, e.g. data/questions/heating.jsonl"
)
@click.option("--output", required=True, help="e.g. reports/heating/index.html")
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
    quality,
    quality_examples,
    questions,
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
        ),
        quality=Path(quality) if quality else None,
        quality_examples=Path(quality_examples) if quality_examples else None,
        questions=Path(questions) if questions else None,
    )
    run = load_run(files, name)
    out = Path(output)
    write_text(out, page([run], out.parent, params.eval.examples_per_task))
    log("report", f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
