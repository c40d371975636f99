"""The base model with the adapter merged in, saved as one plain model that any server loads.

The base is loaded unquantised (model.dtype), so the merged weights are exact rather than de-quantised 4-bit ones.
"""

from __future__ import annotations

from pathlib import Path

from finetune.io import atomic_path
from finetune.params import Model


def run(base_path: str | Path, adapter: str | Path, output: str | Path, model_params: Model) -> Path:
    """Merge and save safetensors + tokenizer (with its chat template) to `output`, replacing it whole."""
    from finetune.training.models import load_merged, load_tokenizer

    model = load_merged(base_path, adapter, model_params)
    # The adapter folder holds the tokenizer train saw (with its chat template); it is what the server must use.
    tokenizer = load_tokenizer(adapter, model_params.trust_remote_code)
    with atomic_path(output, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(output)
