"""`finetune train`: QLoRA (bitsandbytes 4-bit base + LoRA) through TRL's SFTTrainer, curves through DVCLive.

Checkpoints go to models/checkpoints/<domain>, a folder dvc.yaml does not declare, so a killed run resumes from its
last complete checkpoint on the next `dvc repro` (finetune.training.checkpoints). `train.num_processes > 1` re-executes
this command under `accelerate launch` (finetune.training.launch); rank 0 alone writes the adapter, metrics, curves
and checkpoints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import click

from finetune.io import InputError, atomic_path, log, sweep_leftovers, write_json
from finetune.params import load_params, params_option
from finetune.training import launch
from finetune.training.checkpoints import (
    file_md5,
    fingerprint,
    last_checkpoint,
    prepare_checkpoints,
    restore_curves,
    stamp_matches,
)
from finetune.training.models import sort_adapter_config
from finetune.vllm_serve import adapter_rank

FINGERPRINT_ENV = "FINETUNE_RUN_FINGERPRINT"


@click.command()
@click.option("--train", "train_path", required=True, help="e.g. data/processed/heating/train.jsonl")
@click.option("--val", "val_path", required=True)
@click.option("--model", "base_path", default="models/base", show_default=True)
@click.option("--output", required=True, help="The adapter's folder, e.g. models/heating.")
@click.option("--checkpoints", required=True, help="The domain's own, e.g. models/checkpoints/heating.")
@click.option("--metrics", "metrics_path", required=True)
@click.option(
    "--timing",
    "timing_path",
    default=None,
    help="Where runtime, tokens/s, peak memory and GPU cost go, e.g. metrics/timing/train/heating.json: no DVC "
    "output, since they differ on every run; the metrics file holds what the run determines.",
)
@click.option("--live-dir", required=True, help="DVCLive curves, e.g. metrics/curves/heating.")
@click.option(
    "--init-from",
    default=None,
    help="An adapter to go on training (staged training; it keeps its own LoRA shape). The base's path, or none: a "
    "new adapter from lora.*.",
)
@params_option
def cli(
    train_path, val_path, base_path, output, checkpoints, metrics_path, timing_path, live_dir, init_from, params_path
):
    """QLoRA-train an adapter on the train split; val loss picks the best checkpoint."""
    params = load_params(params_path)
    checkpoints = Path(checkpoints)
    if init_from and Path(init_from).resolve() == Path(base_path).resolve():
        init_from = None  # dvc.yaml passes models/base for a domain that starts afresh
    if init_from and not (Path(init_from) / "adapter_config.json").is_file():
        raise InputError(init_from, "--init-from: no adapter here (adapter_config.json); train that domain first")
    # Hashing the base's weights takes seconds for a real model: the launcher does it once and hands it to the ranks.
    fp = (launch.launched() and os.environ.get(FINGERPRINT_ENV)) or fingerprint(
        params, train_path, val_path, base_path, init_from
    )
    n = params.train.num_processes
    if n > 1 and not launch.launched():
        args = ["--train", train_path, "--val", val_path, "--model", base_path, "--output", output]
        args += ["--checkpoints", checkpoints, "--metrics", metrics_path, "--live-dir", live_dir]
        args += ["--timing", timing_path] if timing_path else []
        args += ["--init-from", init_from] if init_from else []
        args += [a for path in params_path for a in ("--params", path)]
        code = launch.relaunch(n, [str(a) for a in args], params.train.accelerate_config, {FINGERPRINT_ENV: fp})
        if code != 0:
            raise click.ClickException(f"training on {n} processes failed (exit status {code}); see the log above")
        return

    main = launch.is_main_process()
    if main:
        sweep_leftovers(Path(output))  # what a run killed while saving the adapter left beside it
        resume = prepare_checkpoints(checkpoints, fp)
    else:
        # Read-only: rank 0 may be restamping the folder right now; a mismatch reads as "no resume" on both sides.
        resume = stamp_matches(checkpoints, fp) and last_checkpoint(checkpoints) is not None

    from dvclive import Live

    from finetune.training.card import PER_RUN, model_card
    from finetune.training.trainer import run

    resume_from = last_checkpoint(checkpoints) if resume else None
    if main and resume_from is not None:
        restore_curves(resume_from, live_dir)
    # DVCLive continues the old curves only when the trainer continues the old run; otherwise it starts them afresh.
    # Ranks other than 0 log nothing: two writers would interleave the same files.
    live = Live(live_dir, dvcyaml=False, save_dvc_exp=False, resume=resume) if main else contextlib.nullcontext()
    with live as live:
        trainer, tokenizer, metrics = run(
            train_path, val_path, base_path, params, checkpoints, live, resume_from, init_from
        )
    if not main:
        return
    # DVCLive's summary of the last step: metrics/train/<domain>.json holds the run's metrics, and the curves folder,
    # which dvc.yaml plots file by file, holds curves only.
    (Path(live_dir) / "metrics.json").unlink(missing_ok=True)
    with atomic_path(output, is_dir=True) as tmp:
        trainer.model.save_pretrained(tmp)
        sort_adapter_config(tmp)
        tokenizer.save_pretrained(tmp)
        data = {"train": (train_path, file_md5(train_path)), "val": (val_path, file_md5(val_path))}
        card = model_card(params, metrics, base_path, output, data, adapter_rank(tmp))
        (tmp / "README.md").write_text(card, encoding="utf-8")
    timing = {k: metrics.pop(k) for k in PER_RUN if k in metrics}
    write_json(metrics_path, metrics)
    if timing_path:
        write_json(timing_path, timing)
    # The adapter is saved: the checkpoints have done their job, leave only the stamp.
    for ckpt in checkpoints.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    log(
        "train",
        f"adapter -> {output}; eval_loss {metrics['eval_loss']:.4f}, {timing['tokens_per_second'] or 0:.0f} tok/s, "
        f"{timing['train_runtime']:.0f} s",
    )
