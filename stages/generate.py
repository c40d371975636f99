"""`finetune generate`: blocks -> chat examples for every task in generate.tasks (finetune.generation).

Optionally a teacher LLM on any OpenAI-compatible endpoint adds paraphrased questions (generate.teacher).
"""

from __future__ import annotations

from collections import Counter

import click

from finetune.generation.examples import run
from finetune.io import InputError, load_jsonl, log, write_json, write_jsonl
from finetune.params import load_params


@click.command()
@click.option("--input", "input_path", default="data/interim/blocks.jsonl", show_default=True)
@click.option("--output", default="data/interim/examples.jsonl", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/generate.json", show_default=True)
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def cli(input_path, output, metrics_path, params_path):
    """Generate chat examples for every task in generate.tasks."""
    gparams = load_params(params_path).generate
    examples = run(load_jsonl(input_path), gparams)
    counts = Counter(e["task"] for e in examples)
    missing = [t for t in gparams.tasks if not counts[t]]
    if missing:
        raise InputError(input_path, f"no blocks for task(s) {missing}: the corpus has nothing they can be built from")
    metrics = {}
    if gparams.teacher.endpoint:  # optional teacher LLM: paraphrased questions
        from finetune.generation import teacher

        examples, metrics["teacher"] = teacher.run(examples, gparams)
        counts = Counter(e["task"] for e in examples)
        log("generate", f"teacher: {metrics['teacher']}")
    write_jsonl(output, examples)
    write_json(metrics_path, {"examples": len(examples), "per_task": dict(sorted(counts.items())), **metrics})
    log("generate", f"{len(examples)} examples: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
