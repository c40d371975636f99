"""`finetune export`: the base model with the adapter merged in, saved as one plain model that any server loads.

    finetune export --model models/base --adapter models/adapter --output models/merged
    transformers serve models/merged --host 127.0.0.1 --port 8000     # or: vllm serve models/merged
    finetune evaluate --endpoint http://127.0.0.1:8000/v1 --model models/merged

Not a DVC stage by default: the merged copy is as large as the base, and every experiment would cache another one.
"""

from __future__ import annotations

import click

from finetune.io import log
from finetune.params import load_params


@click.command()
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--adapter", default="models/adapter", show_default=True)
@click.option("--output", default="models/merged", show_default=True)
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def cli(base_path, adapter, output, params_path):
    """Merge the adapter into the base model and save it for serving (vLLM, `transformers serve`)."""
    from finetune.serving.export import run

    params = load_params(params_path)
    out = run(base_path, adapter, output, params.model)
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    log("export", f"merged {adapter} into {base_path}: {out} ({size / 1e6:.1f} MB of safetensors)")
