"""Loading the saved base model and adapter: device and dtype choice, 4-bit quantisation, safe loading.

Weights are loaded from safetensors only: pickled `.bin` checkpoints can run arbitrary code when loaded.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

from finetune.io import InputError
from finetune.params import Model, Quant

# Two messages every run printed that a user reads as errors, though nothing is wrong; each is quietened alone:
# - bitsandbytes, on CPUs with AVX512-BF16, tries on import to fetch a faster 4-bit kernel from the hub through the
#   `kernels` package and logs a warning when it cannot (offline, or `kernels` not installed); it then uses its own
#   CPU kernels, which is what this pipeline wants. Only that module's logger is raised to ERROR.
# - peft asks every model for `is_gradient_checkpointing`, which transformers 5 deprecates with a FutureWarning on
#   each call; it is peft's call, not ours, and its answer is right. Only that exact message is ignored.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(name: str):
    """`auto`: bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU (CPU fp16 matmuls are slow or missing)."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def check_safetensors(path: str | Path) -> None:
    p = Path(path)
    if not p.is_dir():
        raise InputError(p, "model directory not found (run `finetune base` or `dvc repro base`)")
    if not any(p.glob("*.safetensors")) and any(p.glob("*.bin")):
        raise InputError(
            p,
            "only pickled .bin weights found; refusing to load them (they can run code). "
            "Convert to safetensors first.",
        )


def load_tokenizer(path: str | Path, trust_remote_code: bool = False, padding_side: str = "right"):
    """The tokenizer saved with a model or adapter; it must have a chat template, since every example is rendered
    with it (validate counts tokens with it, train and evaluate format prompts with it)."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise InputError(path, "model directory not found (run `dvc repro base` or pass --model)")
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if not getattr(tok, "chat_template", None):
        raise InputError(path, "the tokenizer has no chat template, so examples cannot be rendered")
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(quant: Quant):
    """BitsAndBytesConfig from the `quant` params, or None when 4-bit is switched off (plain LoRA)."""
    if not quant.load_in_4bit:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=quant.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=compute_dtype(quant.bnb_4bit_compute_dtype),
    )


def load_base(path: str | Path, model_params: Model):
    """The base model for inference, unquantised in model.dtype (fp16 becomes fp32 on a CPU, which has no fp16
    matmuls)."""
    import torch

    dtype = compute_dtype(model_params.dtype)
    if device() == "cpu" and dtype == torch.float16:
        dtype = torch.float32
    model = _from_pretrained(path, model_params, dtype=dtype)
    return model.to(device())


def load_for_training(path: str | Path, model_params: Model, quant: Quant):
    """The base model to train an adapter on: 4-bit (bitsandbytes) when quant.load_in_4bit, else as load_base."""
    qconfig = quantization_config(quant)
    if qconfig is None:
        return load_base(path, model_params)
    return _from_pretrained(
        path,
        model_params,
        quantization_config=qconfig,
        dtype=compute_dtype(quant.bnb_4bit_compute_dtype),
        device_map={"": device()},
    )


def library_bars_on_terminal_only() -> None:
    """transformers' weight-loading bar and datasets' (TRL's tokenizing passes) only where stderr is a terminal: in a
    log each is a dozen carriage-return updates per load or pass."""
    if sys.stderr.isatty():
        return
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if "datasets" in sys.modules:  # else its import reads the variable: no second of importing it for nothing
        sys.modules["datasets"].disable_progress_bars()
    else:
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"


def _from_pretrained(path: str | Path, model_params: Model, **kwargs):
    from transformers import AutoModelForCausalLM

    check_safetensors(path)
    library_bars_on_terminal_only()
    return AutoModelForCausalLM.from_pretrained(
        path, use_safetensors=True, trust_remote_code=model_params.trust_remote_code, **kwargs
    )


def load_adapter(base_model, adapter_path: str | Path, name: str = "default"):
    """`base_model` with the adapter at `adapter_path` loaded unmerged under `name`, so it can be switched off
    (`with model.disable_adapter():`) or joined by more adapters (`model.load_adapter(path, other_name)`)."""
    from peft import PeftModel

    check_safetensors(adapter_path)
    return PeftModel.from_pretrained(base_model, adapter_path, adapter_name=name)


def load_merged(base_path: str | Path, adapter_path: str | Path, model_params: Model):
    """Base + adapter with the LoRA weights merged in, for fast generation (no extra matmuls per layer)."""
    from peft import PeftModel

    check_safetensors(adapter_path)
    model = load_base(base_path, model_params)
    return PeftModel.from_pretrained(model, adapter_path).merge_and_unload()


def unpack_4bit_weights(model) -> int:
    """Put every 4-bit weight that bitsandbytes repacked for CPU inference back into its training layout; returns
    how many it repacked.

    On CPUs with AVX512-BF16, bitsandbytes (0.50) repacks a Linear4bit's weight into an inference layout the first
    time it runs in eval mode, and only a state-dict save converts it back. Training steps after an evaluation then
    run on the inference layout and learn much less (eval loss 1.49 instead of 1.31 on the default run), unless a
    checkpoint happened to be saved in between. Called after every evaluation, so training is right whatever the
    save strategy.
    """
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    from bitsandbytes.nn import Linear4bit

    n = 0
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if isinstance(module, Linear4bit) and getattr(state, "packing_format_for_cpu", False):
            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state
            )
            n += 1
    return n


def sort_adapter_config(folder: str | Path) -> None:
    """Rewrite a saved adapter's adapter_config.json with target_modules sorted. peft writes them from a set, in an
    order that follows the process's hash seed, so the same training gave other bytes (and another dvc.lock hash) in
    every process; the weights were identical."""
    path = Path(folder) / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
