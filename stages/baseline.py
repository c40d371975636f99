"""`finetune baseline`: the base model alone on the val split, scored like the fine-tuned one.

Its own stage, depending only on the base model, the val data and the eval params, so a LoRA sweep
(`dvc exp run -S lora.r=64`) reuses it instead of regenerating the baseline every time.
"""

from __future__ import annotations

import click

from finetune.io import load_jsonl, log, write_json, write_jsonl
from finetune.params import load_params, params_option


@click.command()
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--val", "val_path", required=True, help="e.g. data/processed/heating/val.jsonl")
@click.option("--predictions", required=True)
@click.option("--scores", required=True)
@click.option(
    "--timing",
    "timing_path",
    required=True,
    help="Latency and throughput, e.g. metrics/timing/baseline/heating.json: no DVC output, since they differ on "
    "every run (predictions and scores do not).",
)
@click.option("--tasks", "tasks_path", required=True, help="The task file: format checks.")
@params_option
def cli(base_path, val_path, predictions, scores, timing_path, tasks_path, params_path):
    """Generate val answers with the untuned base model and score them."""
    from finetune.evaluation.metrics import score
    from finetune.evaluation.predict import predict
    from finetune.generation.taskfile import load
    from finetune.training.models import load_base, load_tokenizer

    params = load_params(params_path)
    tasks = load(tasks_path)
    examples = load_jsonl(val_path)
    tokenizer = load_tokenizer(base_path, params.model.trust_remote_code)
    model = load_base(base_path, params.model)
    rows, timing = predict(model, tokenizer, examples, params.eval, params.generate.refusal, "baseline", tasks)
    result = score(rows)
    write_jsonl(predictions, rows)
    write_json(scores, result)
    write_json(timing_path, timing)
    log(
        "baseline",
        f"{len(rows)} val examples: rouge_l {result['overall']['rouge_l']:.3f}, "
        f"exact_match {result['overall']['exact_match']:.3f}",
    )
