"""`finetune compare`: every domain's evaluate and interference results in one table (metrics) and one page.

Reads every `<domain>.json` in --eval-dir (evaluate's metrics) and --interference-dir; see
finetune.evaluation.compare for the keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from finetune.evaluation.compare import markdown, table
from finetune.io import InputError, log, write_json, write_text


def _read_all(folder: str) -> dict[str, dict]:
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InputError(path, f"not valid JSON: {e.msg}", e.lineno) from None
    return out


@click.command()
@click.option("--eval-dir", default="metrics/eval", show_default=True, help="evaluate's <domain>.json files.")
@click.option("--interference-dir", default="metrics/interference", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/compare.json", show_default=True)
@click.option("--report", "report_path", default="reports/compare.md", show_default=True)
def cli(eval_dir, interference_dir, metrics_path, report_path):
    """Put every adapter's results, per task and on the other domains, side by side."""
    evals = _read_all(eval_dir)
    if not evals:
        raise InputError(eval_dir, "no <domain>.json here: run evaluate first")
    compared = table(evals, _read_all(interference_dir))
    write_json(metrics_path, compared)
    write_text(report_path, markdown(compared))
    log(
        "compare",
        ", ".join(f"{d} rouge_l {r['rouge_l']:.3f} (base {r['rouge_l_base']:.3f})" for d, r in compared.items()),
    )
