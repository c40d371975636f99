"""`finetune base`: materialise the base model into models/base, so every later stage depends on exact bytes.

`model.name: tiny` builds a ~1 M-parameter Llama with a tokenizer trained on the corpus; any other name is a hub
id or a local path, loaded once (safetensors only) and saved. See finetune.training.base_model.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import atomic_path, load_records, log
from finetune.params import load_params, params_option
from finetune.training.base_model import run


@click.command()
@click.option("--blocks", required=True, help="The tiny base's text, e.g. data/pretrain/blocks.jsonl.")
@click.option("--output", default="models/base", show_default=True)
@params_option
def cli(blocks, output, params_path):
    """Build (tiny) or fetch (hub id / path) the base model and save it with its tokenizer."""
    model_params = load_params(params_path).model
    tokenizer, model = run(load_records(blocks, ("title", "text"), "a block"), model_params, source=blocks)
    with atomic_path(output, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    n = sum(p.numel() for p in model.parameters())
    log("base", f"{model_params.name}: {n / 1e6:.2f} M parameters, vocab {len(tokenizer)} -> {Path(output)}")
