"""`finetune export`: the base model with the adapter merged in, saved as one plain model that any server loads; or,
with --vllm, the one `vllm serve` command that serves every domain's adapter beside the shared base.

    finetune export --model models/base --adapter models/heating --output models/merged
    transformers serve models/merged --host 127.0.0.1 --port 8000     # or: vllm serve models/merged
    finetune evaluate --endpoint http://127.0.0.1:8000/v1 --model models/merged

    finetune export --vllm              # vllm serve models/base --enable-lora --max-lora-rank 16 … heating=models/heating …
    finetune evaluate --endpoint http://127.0.0.1:8000/v1 --model heating …   # one adapter, by its name

Not a DVC stage by default: the merged copy is as large as the base, and every experiment would cache another one.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import InputError, log
from finetune.params import load_params, params_option


@click.command()
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--adapter", default=None, help="The adapter to merge, e.g. models/heating.")
@click.option("--output", default="models/merged", show_default=True)
@click.option(
    "--vllm",
    is_flag=True,
    help="Print the `vllm serve` command for every domain's adapter (models/<domain>) instead of merging one.",
)
@click.option("--port", type=int, default=None, help="With --vllm: the port to serve on.")
@params_option
def cli(base_path, adapter, output, vllm, port, params_path):
    """Merge the adapter into the base model and save it for serving (vLLM, `transformers serve`)."""
    from finetune.serving.export import run

    params = load_params(params_path)
    if vllm:
        from finetune.vllm_serve import serve_command

        models = Path(base_path).parent
        adapters = {name: models / name for name in params.domains}
        missing = [str(path) for path in adapters.values() if not (path / "adapter_config.json").is_file()]
        if missing:
            raise InputError(missing[0], "no adapter here: run `dvc repro` (or `dvc pull`) for that domain first")
        # vLLM loads the base from a folder or the hub; the tiny default exists only in models/base.
        base = base_path if params.model.name == "tiny" else params.model.name
        click.echo(serve_command(base, adapters, port=port))
        return
    if adapter is None:
        raise click.UsageError("missing --adapter PATH (e.g. models/heating): the adapter to merge")
    out = run(base_path, adapter, output, params.model)
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    log("export", f"merged {adapter} into {base_path}: {out} ({size / 1e6:.1f} MB of safetensors)")
