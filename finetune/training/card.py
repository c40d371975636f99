"""The model card (README.md) saved beside an adapter: what it was trained from, how, how well, how to serve it."""

from __future__ import annotations

import json

from finetune.params import Params
from finetune.vllm_serve import serve_command

PER_RUN = ("train_runtime", "tokens_per_second", "peak_memory_mb", "gpu_hours", "cost")


def model_card(
    params: Params, metrics: dict, base_path: str, adapter_path: str, data: dict[str, tuple[str, str]], rank: int
) -> str:
    """`data` maps each split's name to (path, md5) as train read it; `rank` is the adapter's LoRA rank (its
    parent's, for an adapter that went on from another)."""
    name = params.model.name
    # vLLM needs the base weights on disk or on the hub; the tiny default only exists in models/base.
    base = base_path if name == "tiny" else name
    adapter_name = adapter_path.rstrip("/").split("/")[-1]
    shown = {
        "model": params.model.model_dump(),
        "quant": params.quant.model_dump(),
        "lora": params.lora.model_dump(),
        "train": params.train.model_dump(),
    }
    splits = "\n".join(f"- {split}: `{path}`, md5 `{md5}`" for split, (path, md5) in data.items())
    # Timings differ on every run; the card lives inside models/adapter, whose hash must not (metrics/train.json has
    # them).
    kept = {k: v for k, v in metrics.items() if k not in PER_RUN}
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in kept.items())
    return f"""---
library_name: peft
base_model: {base}
tags: [lora, qlora, trl, dvc]
---
# {adapter_name}

A LoRA adapter for `{base}` (model.name: `{name}`, revision `{params.model.revision}`),
trained by `finetune train` in a DVC pipeline (`dvc repro`).

## Data
{splits}

These are the md5 digests DVC records in `dvc.lock`, so `git log dvc.lock` finds the commit that made this data.

## Serve
```
{serve_command(base, {adapter_name: adapter_path}, [rank])}
```

## Metrics
| metric | value |
|---|---|
{rows}

## Params
```json
{json.dumps(shown, indent=2)}
```
"""
