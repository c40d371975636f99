"""`finetune interference`: one domain's adapter on a sample of every other domain's val set, beside the base.

Reads `<domain>/val.jsonl` under --val-dir (validate's checked splits) for every domain of params.yaml and writes, per other domain, what
finetune.evaluation.interference measures. The base answers with the adapter switched off: one model load for both.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import InputError, load_jsonl, log, write_json
from finetune.params import load_params, params_option


@click.command()
@click.option("--domain", required=True, help="The adapter's domain; its own val set is left out.")
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--adapter", required=True, help="The domain's adapter, e.g. models/heating.")
@click.option("--val-dir", default="data/processed", show_default=True, help="One <domain>/val.jsonl per domain.")
@click.option("--output", required=True, help="e.g. metrics/interference/heating.json")
@params_option
def cli(domain, base_path, adapter, val_dir, output, params_path):
    """Answer other domains' val examples and refusal questions with this adapter and with the base."""
    from finetune.evaluation.inference import generate
    from finetune.evaluation.interference import draw, prompts, summarise
    from finetune.training.models import load_adapter, load_base, load_tokenizer

    params = load_params(params_path)
    # The domains params.yaml lists, not whatever the folder holds: a removed domain's outputs stay on disk.
    val_sets = {}
    for name in params.domains:
        path = Path(val_dir) / name / "val.jsonl"
        if not path.is_file():
            raise InputError(path, f"no val set: run validate for {name} first")
        val_sets[name] = load_jsonl(path)
    if domain not in val_sets:
        raise InputError(params_path[0], f"domains: {domain} is not one of them")
    drawn = draw(val_sets, domain, params.compare)
    asked = prompts(drawn, params.generate.system_prompt)
    if not asked:
        log("interference", f"no other domain under {val_dir}: nothing to compare {domain} with")
        write_json(output, {"adapter": domain, "on": {}})
        return
    tokenizer = load_tokenizer(adapter, params.model.trust_remote_code)
    model = load_adapter(load_base(base_path, params.model), adapter)
    batch, new_tokens = params.eval.batch_size, params.eval.max_new_tokens
    tuned = [g["prediction"] for g in generate(model, tokenizer, asked, batch, new_tokens, f"{domain} adapter")]
    with model.disable_adapter():
        base = [g["prediction"] for g in generate(model, tokenizer, asked, batch, new_tokens, "base")]
    result = summarise(drawn, base, tuned, params.generate.refusal)
    write_json(output, {"adapter": domain, "on": result})
    for other, r in result.items():
        delta = "n/a" if r["rouge_l_delta"] is None else f"{r['rouge_l_delta']:+.3f}"
        log(
            "interference",
            f"{domain} adapter on {other}: rouge_l {delta} vs base over {r['examples']} examples, refuses "
            f"{r['refuses_in_domain'] or 0:.0%} of them and {r['refuses_off_topic'] or 0:.0%} of "
            f"{r['refusal_questions']} off-topic questions",
        )
