"""The QLoRA recipe as library objects: peft's LoraConfig, TRL's SFTConfig and the trainer callbacks, from params."""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

import click

from finetune.io import log
from finetune.training.checkpoints import CURVES
from finetune.params import Lora, Quant, Train


def lora_config(lora: Lora):
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias=lora.bias,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
        task_type="CAUSAL_LM",
    )


def sft_config(train: Train, max_seq_len: int, output_dir: str, quant: Quant):
    import torch
    from trl import SFTConfig

    from finetune.training.models import compute_dtype

    cuda = torch.cuda.is_available()
    dtype = compute_dtype(quant.bnb_4bit_compute_dtype)
    optim = train.optim
    if optim == "auto":
        # paged 8-bit AdamW saves GPU memory; its CPU path is not worth it at this size, plain AdamW is.
        optim = "paged_adamw_8bit" if cuda else "adamw_torch"
    strategy = train.eval_strategy
    return SFTConfig(
        output_dir=output_dir,
        num_train_epochs=train.epochs,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_steps,
        per_device_train_batch_size=train.per_device_train_batch_size,
        per_device_eval_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        optim=optim,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        seed=train.seed,
        data_seed=train.seed,
        # transformers 5 renamed it; the old name still works but warns on every run. The params key keeps its name.
        activation_checkpointing=train.gradient_checkpointing,
        packing=train.packing,
        padding_free=train.packing,
        train_sampling_strategy=train.sampling_strategy,
        completion_only_loss=train.completion_only_loss,
        max_length=max_seq_len,
        eval_strategy=strategy,
        eval_steps=train.eval_steps if strategy == "steps" else None,
        save_strategy=strategy,
        save_steps=train.eval_steps if strategy == "steps" else 500,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=train.load_best_model_at_end,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=train.logging_steps,
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
        # The step bar only on a terminal: in a log its carriage-return updates would be most of the log.
        disable_tqdm=not sys.stderr.isatty(),
        dataloader_num_workers=0,
    )


# The trainer's logged values that become curves (eval_* under eval/); not runtimes, FLOPs, epoch or token counts.
CURVE_KEYS = frozenset(
    ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "entropy")
    + ("eval_loss", "eval_mean_token_accuracy", "eval_entropy")
)


# What the stage's epoch line shows, in this order, as (logged key, label): the train loss is the mean of the epoch's
# logged values, the others the epoch's last.
EPOCH_KEYS = (("loss", "loss"), ("eval_loss", "eval_loss"), ("eval_mean_token_accuracy", "eval token accuracy"))


def epoch_line(epoch: int, epochs: int, losses: list[float], last: dict, seconds: float) -> str:
    values = {"loss": sum(losses) / len(losses)} if losses else {}
    values |= {k: last[k] for k, _ in EPOCH_KEYS[1:] if k in last}
    shown = ", ".join(f"{label} {values[k]:.4g}" for k, label in EPOCH_KEYS if k in values)
    return f"epoch {epoch}/{epochs}: {shown or 'nothing logged'}, {seconds:.0f} s"


def quiet_trainer(trainer) -> None:
    """Take the Trainer's own per-log lines out (`{'loss': …}` dicts: PrinterCallback without a bar, the bar's
    written lines with one); EpochLog says the same once per epoch. A terminal keeps the bar."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly())


def callbacks(train: Train, live):
    from transformers import EarlyStoppingCallback, TrainerCallback
    from transformers.integrations import DVCLiveCallback

    from finetune.training.models import unpack_4bit_weights

    class StepAlignedDVCLive(DVCLiveCallback):
        """DVCLive's callback counts log calls; align its step with the trainer's global step so a resumed run
        continues the same curve, and train/val losses of one step share a row. Only the curves in CURVE_KEYS are
        written (dvc.yaml plots every file in the folder), and no params.yaml of TrainingArguments (params.yaml and
        the model card hold the run's params)."""

        def setup(self, args, state, model):
            self._initialized = True

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if self.live is not None:
                self.live.step = state.global_step
            logs = {k: v for k, v in (logs or {}).items() if k in CURVE_KEYS}
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    class StopOnNonFiniteLoss(TrainerCallback):
        """Stop at the first logged NaN/inf loss, before the adapter is written (the logged train loss is the mean
        over the last `logging_steps` steps, so the step named is the first log at or after the divergence)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "eval_loss"):
                if key in (logs or {}) and not math.isfinite(logs[key]):
                    if sys.stderr.isatty():
                        print(file=sys.stderr)  # end the progress bar's line, so the error is a line of its own
                    raise click.ClickException(
                        f"{key} is {logs[key]} at step {state.global_step}: training diverged. "
                        "Lower train.learning_rate or check the data; no adapter was written, "
                        "earlier checkpoints are kept."
                    )

    class EpochLog(TrainerCallback):
        """One `[train] epoch 2/4: loss …, eval_loss …, …` line per epoch, on rank 0. An epoch's evaluation comes
        after on_epoch_end, so its line is written when the next epoch begins or training ends."""

        def __init__(self):
            self.losses, self.last, self.pending, self.started = [], {}, None, time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                self.losses.append(logs["loss"])
            self.last |= logs

        def on_epoch_end(self, args, state, control, **kwargs):
            self.pending = round(state.epoch)

        def flush(self, state):
            if self.pending is not None and state.is_world_process_zero:
                seconds = time.perf_counter() - self.started
                line = epoch_line(self.pending, math.ceil(state.num_train_epochs), self.losses, self.last, seconds)
                if sys.stderr.isatty():  # above the step bar, which tqdm redraws below
                    from tqdm import tqdm

                    tqdm.write(f"[train] {line}", file=sys.stderr)
                else:
                    log("train", line)
            if self.pending is not None:
                self.losses, self.last, self.pending, self.started = [], {}, None, time.perf_counter()

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.flush(state)

        def on_train_end(self, args, state, control, **kwargs):
            self.flush(state)

    class TrainingLayoutAfterEvaluate(TrainerCallback):
        """Undo bitsandbytes' CPU inference repacking after each evaluation (see models.unpack_4bit_weights)."""

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            if model is not None:
                unpack_4bit_weights(model)

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

    cbs = [StopOnNonFiniteLoss(), TrainingLayoutAfterEvaluate(), EpochLog()]
    if live is not None:  # rank 0 only
        cbs += [StepAlignedDVCLive(live=live), CurvesInCheckpoint()]
    if train.early_stopping_patience > 0:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience))
    return cbs
