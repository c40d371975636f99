"""Loading the saved base model and adapter: device and dtype choice, 4-bit quantisation, safe loading.

Weights are loaded from safetensors only: pickled `.bin` checkpoints can run arbitrary code when loaded.
"""

from __future__ import annotations

from pathlib import Path

from stages.io import InputError


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
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(quant: dict):
    """BitsAndBytesConfig from the `quant` params, or None when 4-bit is switched off (plain LoRA)."""
    if not quant.get("load_in_4bit", False):
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant["bnb_4bit_quant_type"],
        bnb_4bit_use_double_quant=quant["bnb_4bit_use_double_quant"],
        bnb_4bit_compute_dtype=compute_dtype(quant["bnb_4bit_compute_dtype"]),
    )


def load_base(path: str | Path, model_params: dict, quant: dict | None = None):
    """The base model for training (4-bit when `quant` says so) or for inference (quant=None)."""
    from transformers import AutoModelForCausalLM

    check_safetensors(path)
    qconfig = quantization_config(quant) if quant else None
    dtype = compute_dtype(quant["bnb_4bit_compute_dtype"]) if qconfig else compute_dtype(model_params["dtype"])
    if qconfig is None and device() == "cpu":
        import torch

        dtype = torch.float32 if dtype == torch.float16 else dtype
    model = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=qconfig,
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=model_params.get("trust_remote_code", False),
        device_map={"": device()} if qconfig is not None else None,
    )
    if qconfig is None:
        model.to(device())
    return model


def load_merged(base_path: str | Path, adapter_path: str | Path, model_params: dict):
    """Base + adapter with the LoRA weights merged in, for fast generation (no extra matmuls per layer)."""
    from peft import PeftModel

    check_safetensors(adapter_path)
    model = load_base(base_path, model_params)
    return PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
