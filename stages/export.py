"""`finetune export`: the base model with the adapter merged in, saved as one plain model that any server loads.

    finetune export --model models/base --adapter models/adapter --output models/merged
    transformers serve models/merged --host 127.0.0.1 --port 8000     # or: vllm serve models/merged
    finetune evaluate --endpoint http://127.0.0.1:8000/v1 --model models/merged

The base is loaded unquantised (model.dtype), so the merged weights are exact rather than de-quantised 4-bit ones.
Not a DVC stage by default: the merged copy is as large as the base, and every experiment would cache another one.
"""

from __future__ import annotations

from pathlib import Path

import click

from stages.io import atomic_path, load_params, log


def run(base_path: str | Path, adapter: str | Path, output: str | Path, model_params: dict) -> Path:
    """Merge and save safetensors + tokenizer (with its chat template) to `output`, replacing it whole."""
    from stages.models import load_merged, load_tokenizer

    model = load_merged(base_path, adapter, model_params)
    # The adapter folder holds the tokenizer train saw (with its chat template); it is what the server must use.
    tokenizer = load_tokenizer(adapter, model_params.get("trust_remote_code", False))
    with atomic_path(output, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(output)


@click.command()
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--adapter", default="models/adapter", show_default=True)
@click.option("--output", default="models/merged", show_default=True)
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def cli(base_path, adapter, output, params_path):
    """Merge the adapter into the base model and save it for serving (vLLM, `transformers serve`)."""
    params = load_params(params_path)
    out = run(base_path, adapter, output, params["model"])
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    log("export", f"merged {adapter} into {base_path}: {out} ({size / 1e6:.1f} MB of safetensors)")
