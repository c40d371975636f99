"""Running `finetune train` on several processes: it re-executes itself under `accelerate launch` (DDP, or the FSDP or
DeepSpeed set-up of an accelerate config file), and inside a launched process it tells rank 0 from the others.

Nothing here is home-made distribution: accelerate starts the processes (torchrun underneath) and the HF Trainer
does the rest (DistributedSampler, gradient all-reduce, saving on rank 0 only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from finetune.io import log


def launched() -> bool:
    """True inside one rank of a multi-process launch: torchrun (under `accelerate launch`) and the DeepSpeed
    launcher set LOCAL_RANK for every process they start."""
    return "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes the adapter, the metrics, the curves and the checkpoints."""
    return int(os.environ.get("RANK", "0")) == 0


def pin_device() -> None:
    """Under a multi-GPU launch, make this rank's GPU the current one before the model is loaded: the 4-bit base is
    placed on "cuda" (finetune.training.models), which means the current device; otherwise every rank would load onto GPU 0."""
    import torch

    if launched() and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def name_device(model) -> None:
    """Record the rank's GPU index in a 4-bit model's device map. finetune.training.models loads it with {"": "cuda"}; accelerate
    reads that as "no index" and refuses to train a 4-bit model under DDP on any GPU but 0. (Not run here: no GPU.)"""
    import torch

    if launched() and torch.cuda.is_available() and getattr(model, "hf_device_map", None):
        model.hf_device_map = {"": torch.cuda.current_device()}


def launch_command(num_processes: int, cli_args: list[str], config_file: str | None = None) -> list[str]:
    """`accelerate launch` running `finetune train` with the same arguments on `num_processes` processes.

    Without a config file this is plain DDP: `--multi_gpu` makes accelerate start the ranks with torchrun (on a CPU
    machine too, where the Trainer's `use_cpu` turns it into gloo DDP). A config file (FSDP, DeepSpeed) brings its
    own distributed type; `--num_processes` still comes from params so the two cannot disagree.
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if config_file:
        cmd += ["--config_file", str(config_file)]
    else:
        # Spelled out so accelerate does not read a stray ~/.cache/huggingface/accelerate/default_config.yaml or warn
        # about each default it assumes. Port 0: a free port, so two runs on one machine do not collide on 29500.
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd += ["--main_process_port", "0"]
    return cmd + ["-m", "finetune.cli", "train", *cli_args]


def relaunch(num_processes: int, cli_args: list[str], config_file: str | None = None, env: dict | None = None) -> int:
    """Run the launched command to completion, with `env` added to each rank's environment; its ranks log to our
    stderr. Returns its exit status."""
    cmd = launch_command(num_processes, cli_args, config_file)
    log("train", f"{num_processes} processes: {' '.join(cmd[1:])}")
    # The ranks must run the very packages this process runs (a test's copy of the repo, say), not whatever
    # `stages` or `finetune` the interpreter would find first.
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(cmd, env={**os.environ, **(env or {}), "PYTHONPATH": path}).returncode
