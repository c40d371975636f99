"""`finetune train`: QLoRA (bitsandbytes 4-bit base + LoRA) through TRL's SFTTrainer, curves through DVCLive.

Checkpoints go to models/checkpoints, a folder dvc.yaml does not declare, so DVC never deletes it: a killed run
resumes from its last complete checkpoint on the next `dvc repro`. Each checkpoint holds a copy of the DVCLive curves
up to its step, which the resumed run puts back (DVC deletes metrics/train, an out, before rerunning the stage) and
continues. A fingerprint of the params and data guards the folder: checkpoints of a run with other params or data are
discarded, never resumed. A finished run empties it.

`train.num_processes > 1` re-executes this command under `accelerate launch` (stages/launch.py); rank 0 alone
writes the adapter, metrics, curves and checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import click

from stages import launch
from stages.io import atomic_path, content_id, load_jsonl, load_params, log, write_json

PARAM_SECTIONS = ("model", "quant", "lora", "train")
# train keys that do not change what is trained: editing them must not throw away the checkpoints of a killed run.
NOT_TRAINING = ("gpu_hourly_cost",)
CURVES = "dvclive"  # each checkpoint's copy of the DVCLive folder


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
        # The Trainer's default drops NaN/inf step losses from the logged mean, which would hide a divergence from
        # StopOnNonFiniteLoss below.
        logging_nan_inf_filter=False,
        # Under DDP: every LoRA weight gets a gradient each step, so skip the per-step search for unused ones.
        ddp_find_unused_parameters=False,
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
        """Stop at the first logged NaN/inf loss, before the adapter is written (the logged train loss is the mean
        over the last `logging_steps` steps, so the step named is the first log at or after the divergence)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "eval_loss"):
                if key in (logs or {}) and not math.isfinite(logs[key]):
                    print(file=sys.stderr)  # end the progress bar's line, so the error is a line of its own
                    raise click.ClickException(
                        f"{key} is {logs[key]} at step {state.global_step}: training diverged. "
                        "Lower train.learning_rate or check the data; no adapter was written, "
                        "earlier checkpoints are kept."
                    )

    class CurvesInCheckpoint(TrainerCallback):
        """Copy the curves so far into each checkpoint. DVC deletes metrics/train (an out) before it reruns train,
        so a resumed run puts them back from the checkpoint it resumes (restore_curves)."""

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            tmp = folder / f"{CURVES}.tmp"  # renamed when whole: a kill mid-copy leaves no half a copy to restore
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(live.dir, tmp)
            shutil.rmtree(folder / CURVES, ignore_errors=True)
            tmp.rename(folder / CURVES)

    cbs = [StopOnNonFiniteLoss()]
    if live is not None:  # rank 0 only
        cbs += [StepAlignedDVCLive(live=live), CurvesInCheckpoint()]
    if train["early_stopping_patience"] > 0:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=train["early_stopping_patience"]))
    return cbs


def read_state(checkpoint: Path) -> dict | None:
    """The checkpoint's trainer_state.json, or None when it is missing or cut short. The Trainer writes that file
    last (after weights, optimizer, scheduler and RNG state), so a run killed while saving leaves none."""
    try:
        return json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def last_checkpoint(folder: Path) -> Path | None:
    done = [c for c in folder.glob("checkpoint-*") if c.name.split("-")[-1].isdigit() and read_state(c) is not None]
    return max(done, key=lambda c: int(c.name.split("-")[-1]), default=None)


def stamp_matches(folder: Path, fingerprint: str) -> bool:
    stamp = folder / "run.json"
    return stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint


def prepare_checkpoints(folder: Path, fingerprint: str) -> bool:
    """Keep checkpoints only if they belong to this exact run; return True when there is a complete one to resume."""
    if stamp_matches(folder, fingerprint):
        for partial in [c for c in folder.glob("checkpoint-*") if read_state(c) is None]:
            shutil.rmtree(partial)  # cut short by the kill: never resumed, and in the way of the rerun's own save
        return last_checkpoint(folder) is not None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    return False


def restore_curves(checkpoint: Path, live_dir: str | Path) -> None:
    """The curves as they were when `checkpoint` was saved, for a run that resumes it to continue."""
    saved = checkpoint / CURVES
    if saved.is_dir():
        shutil.rmtree(live_dir, ignore_errors=True)
        shutil.copytree(saved, live_dir)
    trim_curves(live_dir, read_state(checkpoint)["global_step"])  # for a checkpoint saved without a copy


def trim_curves(live_dir: str | Path, step: int) -> None:
    """Drop curve rows logged after `step`: the killed run logged them after its last checkpoint, and the resumed
    run logs those steps again, so keeping them would draw each twice."""
    for tsv in (Path(live_dir) / "plots").rglob("*.tsv"):
        with tsv.open(newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        col = rows[0].index("step")
        kept = [rows[0]] + [r for r in rows[1:] if int(r[col]) <= step]
        with tsv.open("w", newline="") as fh:
            csv.writer(fh, delimiter="\t", lineterminator="\n").writerows(kept)


def remove_stale_temporaries(output: str | Path) -> None:
    # A run killed while saving leaves stages.io.atomic_path's `.adapter.*.tmp` (or `.adapter.old`) beside the
    # adapter; nothing else writes there while DVC holds the stage's lock.
    out = Path(output)
    for stale in [*out.parent.glob(f".{out.name}.*.tmp"), out.with_name(f".{out.name}.old")]:
        shutil.rmtree(stale, ignore_errors=True)


def best_epoch(log_history: list[dict]) -> float | None:
    evals = [e for e in log_history if "eval_loss" in e]
    return min(evals, key=lambda e: e["eval_loss"])["epoch"] if evals else None


def summarise(trainer, result, tokens_per_epoch: int, start_epoch: float, train: dict) -> dict:
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
    metrics.update(gpu_cost(runtime, launch.world_size(), train.get("gpu_hourly_cost"), torch.cuda.is_available()))
    return metrics


def gpu_cost(runtime_s: float, processes: int, hourly: float | None, gpu: bool) -> dict:
    """GPU-hours and their price for this run (one GPU per process), when a price is set and GPUs ran."""
    if not hourly or not gpu:
        return {}
    hours = runtime_s / 3600 * processes
    return {"gpu_hours": hours, "cost": hours * hourly}


def fingerprint(params: dict, train_path, val_path, base_path) -> str:
    """What a checkpoint must match to be resumed: the params train reads, both splits and the base weights."""
    # Every weights file: a hub model of a few GB comes in shards (model-00001-of-00002.safetensors, ...).
    weights = sorted(Path(base_path).glob("*.safetensors"))
    p = {k: params[k] for k in PARAM_SECTIONS}
    p["train"] = {k: v for k, v in p["train"].items() if k not in NOT_TRAINING}
    return content_id(
        json.dumps(p, sort_keys=True), file_md5(train_path), file_md5(val_path), *(file_md5(w) for w in weights)
    )


def run(train_path, val_path, base_path, params: dict, checkpoints: Path, live, resume_from: Path | None = None):
    from datasets import Dataset
    from trl import SFTTrainer

    from stages.chat import to_prompt_completion
    from stages.models import load_base, load_tokenizer

    p = {k: params[k] for k in PARAM_SECTIONS}
    train_set = Dataset.from_list([to_prompt_completion(e) for e in load_jsonl(train_path)])
    val_set = Dataset.from_list([to_prompt_completion(e) for e in load_jsonl(val_path)])

    tokenizer = load_tokenizer(base_path, p["model"]["trust_remote_code"])
    launch.pin_device()
    model = load_base(base_path, p["model"], p["quant"])
    launch.name_device(model)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(p["train"], p["model"]["max_seq_len"], str(checkpoints), p["quant"]),
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        peft_config=lora_config(p["lora"]),
        callbacks=callbacks(p["train"], live),
    )
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
    return trainer, tokenizer, summarise(trainer, result, tokens_per_epoch, start["epoch"], p["train"])


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
    params = load_params(params_path)
    checkpoints = Path(checkpoints)
    fp = fingerprint(params, train_path, val_path, base_path)
    main = launch.is_main_process()
    if main:
        remove_stale_temporaries(output)
        resume = prepare_checkpoints(checkpoints, fp)
    else:
        # Read-only: rank 0 may be restamping the folder right now; a mismatch reads as "no resume" on both sides.
        resume = stamp_matches(checkpoints, fp) and last_checkpoint(checkpoints) is not None

    n = params["train"].get("num_processes", 1)
    if n > 1 and not launch.launched():
        args = ["--train", train_path, "--val", val_path, "--model", base_path, "--output", output]
        args += ["--checkpoints", checkpoints, "--metrics", metrics_path, "--live-dir", live_dir]
        args += ["--params", params_path]
        code = launch.relaunch(n, [str(a) for a in args], params["train"].get("accelerate_config"))
        if code != 0:
            raise click.ClickException(f"training on {n} processes failed (exit status {code}); see the log above")
        return

    from dvclive import Live

    from stages.card import model_card

    resume_from = last_checkpoint(checkpoints) if resume else None
    if main and resume_from is not None:
        restore_curves(resume_from, live_dir)
    # DVCLive continues the old curves only when the trainer continues the old run; otherwise it starts them afresh.
    # Ranks other than 0 log nothing: two writers would interleave the same files.
    live = Live(live_dir, dvcyaml=False, save_dvc_exp=False, resume=resume) if main else contextlib.nullcontext()
    with live as live:
        trainer, tokenizer, metrics = run(train_path, val_path, base_path, params, checkpoints, live, resume_from)
    if not main:
        return
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
