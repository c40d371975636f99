"""The `vllm serve` command line that serves LoRA adapters beside their base model, all from one server. Below both
training/ (the model card names it) and serving/ (`finetune export --vllm` prints it), so neither imports the other.

vLLM sizes its LoRA buffers for `--max-lora-rank` (one of a fixed set of values, 16 by default) and refuses an
adapter of a higher rank; `--max-loras` is how many adapters one batch may mix (1 by default, so requests for
different adapters would queue behind each other).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

# The values vLLM's --max-lora-rank accepts.
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(adapter_path: str | Path) -> int:
    """The adapter's LoRA rank, as peft saved it: the largest of `r` and any per-module rank."""
    config = json.loads((Path(adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))
    return max([int(config["r"]), *map(int, (config.get("rank_pattern") or {}).values())])


def max_lora_rank(ranks: list[int]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's."""
    need = max(ranks)
    fitting = [r for r in VLLM_RANKS if r >= need]
    if not fitting:
        raise ValueError(f"LoRA rank {need} is over vLLM's largest --max-lora-rank, {VLLM_RANKS[-1]}")
    return fitting[0]


def serve_command(
    base: str, adapters: dict[str, str | Path], ranks: list[int] | None = None, port: int | None = None
) -> str:
    """`vllm serve BASE --enable-lora --max-lora-rank R --max-loras N --lora-modules name=path …`; ask for an
    adapter by its name (`model: name` in a request). `ranks`: the adapters' LoRA ranks, else read from them."""
    rank = max_lora_rank(ranks or [adapter_rank(path) for path in adapters.values()])
    args = ["vllm", "serve", str(base), "--enable-lora", "--max-lora-rank", str(rank), "--max-loras"]
    args += [str(len(adapters)), "--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    args += ["--port", str(port)] if port else []
    return shlex.join(args)
