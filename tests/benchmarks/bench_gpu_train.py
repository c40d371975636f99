"""QLoRA training throughput on a GPU for a Llama-3.2-1B-sized model, a script (pytest never collects it):

    python tests/benchmarks/bench_gpu_train.py                          # H100 SXM peak, 2,000 examples
    python tests/benchmarks/bench_gpu_train.py --peak-flops 989e12 --examples 4000 --batch 8 --max-len 1024

The model has Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192, vocab 128256, tied
embeddings) with random weights, so nothing is downloaded: it is built from a config, saved as bf16 safetensors to a
temporary folder and loaded back 4-bit NF4 through the pipeline's own BitsAndBytesConfig (finetune.training.models), then
trained with the train stage's SFTConfig and LoRA config (finetune.training.recipe; params.yaml's quant, lora and train sections)
on random token sequences of varied length, once with padded batches and once with `train.packing` (packed and
padding-free). It prints non-padding tokens/s, peak GPU memory and MFU for each.

MFU = 4 · N · tokens / (seconds × peak bf16 FLOP/s), N the base's parameter count: LoRA runs the forward (2N FLOPs a
token) and the backward through the activations (2N) but computes no gradient for the frozen base weights (the third
2N of full fine-tuning). Attention's sequence-length term and the 4-bit dequantisation are left out, so this is the
share of the GPU doing the model's matmuls. Peak: 989e12 is the H100 SXM's dense bf16 figure (H100 PCIe: 756e12;
A100: 312e12). Without CUDA it stops at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.params import Params, load_params

LLAMA_3_2_1B = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "intermediate_size": 8192,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "pad_token_id": 0,
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak-flops", type=float, default=989e12, help="peak dense bf16 FLOP/s of the GPU")
    ap.add_argument("--examples", type=int, default=2000, help="random sequences, one epoch each set-up")
    ap.add_argument("--batch", type=int, default=8, help="per-device batch size")
    ap.add_argument("--max-len", type=int, default=1024, help="longest sequence (and the packed row length)")
    ap.add_argument("--mean-len", type=int, default=300, help="mean sequence length (lengths are log-normal)")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation: sdpa, flash_attention_2, eager")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def random_lengths(n: int, mean: int, max_len: int, seed: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(seed)
    # Log-normal, like real chat examples: most short, a long tail clipped at max_len.
    lengths = rng.lognormal(mean=np.log(mean) - 0.5 * 0.6**2, sigma=0.6, size=n)
    return [int(x) for x in np.clip(lengths, 16, max_len)]


def tokenizer():
    """A stand-in tokenizer: the data is token ids already; the trainer needs only pad and eos."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), pad_token="<pad>", eos_token="<eos>"
    )


def build_base(folder: Path) -> int:
    """Random Llama-3.2-1B-shaped weights saved as bf16 safetensors; returns the parameter count N."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**LLAMA_3_2_1B), dtype=torch.bfloat16)
    n = model.num_parameters()  # tied embeddings counted once, as the lm_head matmul uses them once per token
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return n


def configs(params: Params, packing: bool, args, output_dir: str):
    """(quantization, SFT, LoRA) configs as the train stage builds them, with this benchmark's batch and length."""
    from finetune.training.models import quantization_config
    from finetune.training.recipe import lora_config, sft_config

    quant = params.quant.model_copy(update={"load_in_4bit": True})
    # model_copy, not validation: eval_strategy "no" is no value a user may set, only what this timing needs.
    train = params.train.model_copy(
        update={
            "packing": packing,
            "epochs": 1,
            "per_device_train_batch_size": args.batch,
            "gradient_accumulation_steps": 1,
            "gradient_checkpointing": args.gradient_checkpointing,
            "eval_strategy": "no",
            "load_best_model_at_end": False,
            "completion_only_loss": False,  # random tokens have no prompt; the loss covers every token
            "logging_steps": 50,
        }
    )
    # eval_strategy "no" also means save_strategy "no" in sft_config: no checkpoint inside the timed loop.
    return quantization_config(quant), sft_config(train, args.max_len, output_dir, quant), lora_config(params.lora)


def train_once(base: Path, params: Params, data, packing: bool, args, work: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    quantization, config, lora = configs(params, packing, args, str(work / f"out-{int(packing)}"))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = AutoModelForCausalLM.from_pretrained(
        base,
        quantization_config=quantization,
        dtype=torch.bfloat16,
        attn_implementation=args.attn,
        device_map={"": torch.cuda.current_device()},
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer(),
        peft_config=lora,
    )
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.train()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = sum(len(ids) for ids in data["input_ids"])
    result = {
        "steps": trainer.state.global_step,
        "tokens": tokens,
        "seconds": seconds,
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30,
    }
    del trainer, model
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench_gpu_train: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine")

    import numpy as np
    from datasets import Dataset

    params = load_params(args.params)
    lengths = random_lengths(args.examples, args.mean_len, args.max_len, args.seed)
    rng = np.random.default_rng(args.seed)
    # Ids from 3 up: 0-2 are the stand-in tokenizer's pad, eos and unk.
    data = Dataset.from_dict({"input_ids": [rng.integers(3, LLAMA_3_2_1B["vocab_size"], n).tolist() for n in lengths]})

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n_params = build_base(work / "base")
        # Warm-up on a few examples: CUDA context, cuBLAS handles and kernel autotuning out of the timed runs.
        train_once(work / "base", params, data.select(range(4 * args.batch)), False, args, work)
        rows = {pk: train_once(work / "base", params, data, pk, args, work) for pk in (False, True)}

    print(
        f"\nQLoRA on a random Llama-3.2-1B-shaped base ({n_params / 1e9:.3f} B params, NF4), "
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, attn {args.attn}, "
        f"{args.examples} sequences (mean {np.mean(lengths):.0f}, max {args.max_len} tokens), batch {args.batch}, "
        f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, peak {args.peak_flops:.3g} FLOP/s"
    )
    print(f"{'packing':<22} {'steps':>6} {'tokens':>10} {'seconds':>8} {'tokens/s':>9} {'peak GiB':>9} {'MFU':>6}")
    for pk, r in rows.items():
        tok_s = r["tokens"] / r["seconds"]
        mfu = 4 * n_params * r["tokens"] / (r["seconds"] * args.peak_flops)
        label = "on (padding-free)" if pk else "off (padded batches)"
        print(
            f"{label:<22} {r['steps']:>6} {r['tokens']:>10} {r['seconds']:>8.1f} {tok_s:>9.0f} "
            f"{r['peak_gb']:>9.2f} {mfu:>6.1%}"
        )
    speedup = rows[False]["seconds"] / rows[True]["seconds"]
    print(f"packing on / off: {speedup:.2f}x tokens/s")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
