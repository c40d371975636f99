"""`finetune compare`: every domain's evaluate and interference results in one table and one page, and the few
headline numbers of each domain in the one file DVC shows as metrics.

Reads `<domain>.json` in --eval-dir (evaluate's metrics) and --interference-dir for every domain of params.yaml; see
finetune.evaluation.compare for the keys.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.evaluation.compare import headline, markdown, table
from finetune.evaluation.question_report import markdown_section
from finetune.evaluation.runfiles import read_json
from finetune.io import InputError, load_jsonl, log, write_json, write_text
from finetune.params import load_params, params_option


@click.command()
@click.option("--eval-dir", default="metrics/eval", show_default=True, help="evaluate's <domain>.json files.")
@click.option("--interference-dir", default="metrics/interference", show_default=True)
@click.option(
    "--questions-dir",
    default=None,
    help="evaluate's answers to each domain's questions (data/questions/<domain>.jsonl): shown first, in full.",
)
@click.option("--metrics", "metrics_path", default="metrics/compare.json", show_default=True, help="The whole table.")
@click.option(
    "--headline",
    "headline_path",
    default="metrics/headline.json",
    show_default=True,
    help="Its headline numbers, flat (`heating.rouge_l`): what `dvc exp show` and `dvc metrics show` print.",
)
@click.option("--report", "report_path", default="reports/compare.md", show_default=True)
@params_option
def cli(eval_dir, interference_dir, questions_dir, metrics_path, headline_path, report_path, params_path):
    """Put every adapter's results, per task and on the other domains, side by side."""
    # The domains params.yaml lists, not whatever the folders hold: a removed domain's outputs stay on disk.
    domains = list(load_params(params_path).domains)
    if not domains:
        raise InputError(params_path[0], "domains: none listed, so there is nothing to compare")
    evals = {d: read_json(Path(eval_dir) / f"{d}.json", f"results of evaluate@{d}") for d in domains}
    interference = {
        d: read_json(Path(interference_dir) / f"{d}.json", f"results of interference@{d}") for d in domains
    }
    compared = table(evals, interference)
    answers = {}
    if questions_dir:
        # A domain whose evaluate had no question file has no answers: its section is left out, not an error.
        answers = {d: load_jsonl(p) for d in domains if (p := Path(questions_dir) / f"{d}.jsonl").is_file()}
    write_json(metrics_path, compared)
    write_json(headline_path, headline(compared))
    write_text(report_path, (markdown_section(evals, answers) if answers else "") + markdown(compared))
    for domain, r in compared.items():
        tasks = f", mean of tasks but refusal {r['rouge_l_tasks']:.3f}" if "rouge_l_tasks" in r else ""
        log("compare", f"{domain}: rouge_l {r['rouge_l']:.3f} (base {r['rouge_l_base']:.3f}){tasks}")
