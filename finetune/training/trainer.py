"""One QLoRA training run through TRL's SFTTrainer, and the summary metrics/train.json records."""

from __future__ import annotations

import time
from pathlib import Path

from finetune.io import load_jsonl, log
from finetune.params import Params, Train
from finetune.training import launch
from finetune.training.checkpoints import read_state
from finetune.training.recipe import callbacks, lora_config, quiet_trainer, sft_config


def best_epoch(log_history: list[dict]) -> float | None:
    evals = [e for e in log_history if "eval_loss" in e]
    return min(evals, key=lambda e: e["eval_loss"])["epoch"] if evals else None


def summarise(trainer, result, tokens_per_epoch: int, start_epoch: float, train: Train) -> dict:
    import resource

    import torch
    from transformers.integrations import DVCLiveCallback

    # Copied before the final evaluation appends to it: that entry is the reloaded best model, not an epoch.
    history = list(trainer.state.log_history)
    # The final evaluation is a summary, not a point on the curve (it would repeat the last step's row).
    for cb in [c for c in trainer.callback_handler.callbacks if isinstance(c, DVCLiveCallback)]:
        trainer.remove_callback(cb)
    final_eval = trainer.evaluate()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    runtime = result.metrics["train_runtime"]  # this run only: a resumed run does not count the killed one
    run_tokens = round(tokens_per_epoch * (trainer.state.epoch - start_epoch))
    if torch.cuda.is_available():
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    metrics = {
        "train_loss": result.training_loss,
        "eval_loss": final_eval["eval_loss"],
        "best_eval_loss": trainer.state.best_metric,
        "best_epoch": best_epoch(history),
        "mean_token_accuracy": final_eval.get("eval_mean_token_accuracy"),
        "entropy": final_eval.get("eval_entropy"),
        "global_step": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        # Non-padding tokens through the model: each example once per epoch (packing and padding-free add none).
        "tokens_processed": round(tokens_per_epoch * trainer.state.epoch),
        "tokens_per_second": run_tokens / runtime if runtime else None,
        "train_runtime": runtime,
        "trainable_params": trainable,
        "trainable_percent": 100 * trainable / total,
        "peak_memory_mb": round(peak_mb, 1),
        "num_processes": launch.world_size(),
    }
    metrics.update(gpu_cost(runtime, launch.world_size(), train.gpu_hourly_cost, torch.cuda.is_available()))
    return metrics


def gpu_cost(runtime_s: float, processes: int, hourly: float | None, gpu: bool) -> dict:
    """GPU-hours and their price for this run (one GPU per process), when a price is set and GPUs ran."""
    if not hourly or not gpu:
        return {}
    hours = runtime_s / 3600 * processes
    return {"gpu_hours": hours, "cost": hours * hourly}


def keep_adapter_in_compute_dtype(model, dtype) -> None:
    """Train an fp32 compute dtype's adapter in fp32. TRL casts a 4-bit model's trainable LoRA weights to bf16 (the
    QLoRA paper's GPU recipe); a CPU without bf16 units emulates bf16 matmuls, which made the heating sample's QLoRA
    run 1.8x slower than with fp32 adapter weights (1,553 vs 2,786 tokens/s on 2 cores without AVX512-BF16). Called
    before the optimizer exists, so it holds the fp32 tensors. A bf16 or fp16 compute dtype (GPUs) keeps TRL's bf16."""
    import torch

    if dtype != torch.float32:
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def run(
    train_path,
    val_path,
    base_path,
    params: Params,
    checkpoints: Path,
    live,
    resume_from: Path | None = None,
    init_from: str | None = None,
):
    from datasets import Dataset
    from trl import SFTTrainer

    from finetune.chat import to_prompt_completion
    from finetune.training.models import compute_dtype, load_for_training, load_tokenizer

    train_set = Dataset.from_list([to_prompt_completion(e) for e in load_jsonl(train_path)])
    val_set = Dataset.from_list([to_prompt_completion(e) for e in load_jsonl(val_path)])

    tokenizer = load_tokenizer(base_path, params.model.trust_remote_code)
    launch.pin_device()
    model = load_for_training(base_path, params.model, params.quant)
    launch.name_device(model)
    peft_config = lora_config(params.lora)
    if init_from:  # staged training: the earlier stage's adapter, trainable, in place of a new one
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, init_from, is_trainable=True)
        peft_config = None
        log("train", f"going on training the adapter {init_from}")
    trainer = SFTTrainer(
        model=model,
        args=sft_config(params.train, params.model.max_seq_len, str(checkpoints), params.quant),
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks(params.train, live),
    )
    quiet_trainer(trainer)
    keep_adapter_in_compute_dtype(trainer.model, compute_dtype(params.quant.bnb_4bit_compute_dtype))
    tokens_per_epoch = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    start = read_state(resume_from) if resume_from else {"global_step": 0, "epoch": 0.0}
    if resume_from:
        log("train", f"resuming from {resume_from} at step {start['global_step']} (epoch {start['epoch']:.2f})")
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    where = ""
    if launch.world_size() > 1:
        import torch.distributed as dist

        # Says what really ran: the wrapper the Trainer trained through, the collective backend, the base's weights.
        bits = "4-bit" if any(type(m).__name__ == "Linear4bit" for m in trainer.model.modules()) else "unquantised"
        where = f"rank {dist.get_rank()} of {dist.get_world_size()} ({type(trainer.model_wrapped).__name__}, "
        where += f"{dist.get_backend()}, {bits} base): "
    log(
        "train",
        f"{where}trained steps {start['global_step'] + 1}..{trainer.state.global_step} of {trainer.state.max_steps} "
        f"in {time.time() - started:.0f} s",
    )
    return trainer, tokenizer, summarise(trainer, result, tokens_per_epoch, start["epoch"], params.train)
