"""`finetune train`: QLoRA (bitsandbytes 4-bit base + LoRA) through TRL's SFTTrainer, curves through DVCLive.

Checkpoints go to a `persist: true` folder (models/checkpoints) that DVC neither caches nor deletes, so a killed run
resumes from its last checkpoint on the next `dvc repro`. A fingerprint of the params and data guards that folder:
checkpoints of a run with other params or data are discarded, never resumed. A finished run empties it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import click

from stages.io import atomic_path, content_id, load_jsonl, load_params, log, write_json

PARAM_SECTIONS = ("model", "quant", "lora", "train")


def file_md5(path: str | Path) -> str:
    # The same digest DVC records in dvc.lock for a file out, so the model card names the exact data version.
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lora_config(lora: dict):
    from peft import LoraConfig

    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        bias=lora["bias"],
        use_rslora=lora["use_rslora"],
        use_dora=lora["use_dora"],
        task_type="CAUSAL_LM",
    )


def sft_config(train: dict, max_seq_len: int, output_dir: str, quant: dict):
    import torch
    from trl import SFTConfig

    from stages.models import compute_dtype

    cuda = torch.cuda.is_available()
    dtype = compute_dtype(quant["bnb_4bit_compute_dtype"])
    optim = train["optim"]
    if optim == "auto":
        # paged 8-bit AdamW saves GPU memory; its CPU path is not worth it at this size, plain AdamW is.
        optim = "paged_adamw_8bit" if cuda else "adamw_torch"
    strategy = train["eval_strategy"]
    return SFTConfig(
        output_dir=output_dir,
        num_train_epochs=train["epochs"],
        learning_rate=train["learning_rate"],
        lr_scheduler_type=train["lr_scheduler_type"],
        warmup_steps=train["warmup_steps"],
        per_device_train_batch_size=train["per_device_train_batch_size"],
        per_device_eval_batch_size=train["per_device_train_batch_size"],
        gradient_accumulation_steps=train["gradient_accumulation_steps"],
        optim=optim,
        weight_decay=train["weight_decay"],
        max_grad_norm=train["max_grad_norm"],
        seed=train["seed"],
        data_seed=train["seed"],
        gradient_checkpointing=train["gradient_checkpointing"],
        packing=train["packing"],
        padding_free=train["packing"],
        completion_only_loss=train["completion_only_loss"],
        max_length=max_seq_len,
        eval_strategy=strategy,
        eval_steps=train["eval_steps"] if strategy == "steps" else None,
        save_strategy=strategy,
        save_steps=train["eval_steps"] if strategy == "steps" else 500,
        save_total_limit=train["save_total_limit"],
        load_best_model_at_end=train["load_best_model_at_end"],
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=train["logging_steps"],
        logging_first_step=True,
        report_to=[],
        use_cpu=not cuda,
        bf16=cuda and dtype == torch.bfloat16,
        fp16=cuda and dtype == torch.float16,
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


def callbacks(train: dict, live):
    from transformers import EarlyStoppingCallback, TrainerCallback
    from transformers.integrations import DVCLiveCallback

    class StepAlignedDVCLive(DVCLiveCallback):
        """DVCLive's callback counts log calls; align its step with the trainer's global step so a resumed run
        continues the same curve, and train/val losses of one step share a row."""

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if self.live is not None:
                self.live.step = state.global_step
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    class StopOnNonFiniteLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "eval_loss"):
                if key in (logs or {}) and not math.isfinite(logs[key]):
                    raise click.ClickException(
                        f"{key} is {logs[key]} at step {state.global_step}: training diverged. "
                        "Lower train.learning_rate or check the data; checkpoints so far are kept."
                    )

    cbs = [StepAlignedDVCLive(live=live), StopOnNonFiniteLoss()]
    if train["early_stopping_patience"] > 0:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=train["early_stopping_patience"]))
    return cbs


def prepare_checkpoints(folder: Path, fingerprint: str) -> bool:
    """Keep checkpoints only if they belong to this exact run; return True when there is one to resume."""
    stamp = folder / "run.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
        return any(folder.glob("checkpoint-*"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    return False


def best_epoch(log_history: list[dict]) -> float | None:
    evals = [e for e in log_history if "eval_loss" in e]
    return min(evals, key=lambda e: e["eval_loss"])["epoch"] if evals else None


def summarise(trainer, result, n_tokens: int, train: dict) -> dict:
    import resource

    import torch

    history = trainer.state.log_history
    final_eval = trainer.evaluate()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    runtime = result.metrics["train_runtime"]
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
        "tokens_processed": n_tokens,
        "tokens_per_second": n_tokens / runtime if runtime else None,
        "train_runtime": runtime,
        "trainable_params": trainable,
        "trainable_percent": 100 * trainable / total,
        "peak_memory_mb": round(peak_mb, 1),
    }
    if train.get("gpu_hourly_cost") and torch.cuda.is_available():
        metrics["gpu_hours"] = runtime / 3600
        metrics["cost"] = metrics["gpu_hours"] * train["gpu_hourly_cost"]
    return metrics


def fingerprint(params: dict, train_path, val_path, base_path) -> str:
    """What a checkpoint must match to be resumed: the params train reads, both splits and the base weights."""
    weights = Path(base_path) / "model.safetensors"
    p = {k: params[k] for k in PARAM_SECTIONS}
    return content_id(
        json.dumps(p, sort_keys=True),
        file_md5(train_path),
        file_md5(val_path),
        file_md5(weights) if weights.exists() else "",
    )


def run(train_path, val_path, base_path, params: dict, checkpoints: Path, live, resume: bool = False):
    from datasets import Dataset
    from trl import SFTTrainer

    from stages.chat import to_prompt_completion
    from stages.models import load_base, load_tokenizer

    p = {k: params[k] for k in PARAM_SECTIONS}
    train_set = Dataset.from_list([to_prompt_completion(e) for e in load_jsonl(train_path)])
    val_set = Dataset.from_list([to_prompt_completion(e) for e in load_jsonl(val_path)])
    if resume:
        log("train", f"resuming from the last checkpoint in {checkpoints}")

    tokenizer = load_tokenizer(base_path, p["model"]["trust_remote_code"])
    model = load_base(base_path, p["model"], p["quant"])
    trainer = SFTTrainer(
        model=model,
        args=sft_config(p["train"], p["model"]["max_seq_len"], str(checkpoints), p["quant"]),
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        peft_config=lora_config(p["lora"]),
        callbacks=callbacks(p["train"], live),
    )
    # Non-padding tokens the optimiser sees: every example once per epoch (packing has no padding either way).
    n_tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * p["train"]["epochs"]
    started = time.time()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    log("train", f"trained {trainer.state.global_step} steps in {time.time() - started:.0f} s")
    return trainer, tokenizer, summarise(trainer, result, n_tokens, p["train"])


@click.command()
@click.option("--train", "train_path", default="data/processed/train.jsonl", show_default=True)
@click.option("--val", "val_path", default="data/processed/val.jsonl", show_default=True)
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--output", default="models/adapter", show_default=True)
@click.option("--checkpoints", default="models/checkpoints", show_default=True)
@click.option("--metrics", "metrics_path", default="metrics/train.json", show_default=True)
@click.option("--live-dir", default="metrics/train", show_default=True, help="DVCLive curves.")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def cli(train_path, val_path, base_path, output, checkpoints, metrics_path, live_dir, params_path):
    """QLoRA-train an adapter on the train split; val loss picks the best checkpoint."""
    from dvclive import Live

    from stages.card import model_card

    params = load_params(params_path)
    checkpoints = Path(checkpoints)
    resume = prepare_checkpoints(checkpoints, fingerprint(params, train_path, val_path, base_path))
    # DVCLive continues the old curves only when the trainer continues the old run; otherwise it starts them afresh.
    with Live(live_dir, dvcyaml=False, save_dvc_exp=False, resume=resume) as live:
        trainer, tokenizer, metrics = run(train_path, val_path, base_path, params, checkpoints, live, resume)
    with atomic_path(output, is_dir=True) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(
            model_card(params, metrics, base_path, output, file_md5(train_path), file_md5(val_path)), encoding="utf-8"
        )
    write_json(metrics_path, metrics)
    # The adapter is saved: the checkpoints have done their job, leave only the stamp.
    for ckpt in checkpoints.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    log(
        "train", f"adapter -> {output}; eval_loss {metrics['eval_loss']:.4f}, {metrics['tokens_per_second']:.0f} tok/s"
    )
