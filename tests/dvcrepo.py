"""A temporary copy of this repository as a fresh git + DVC repo, for tests that run the real `dvc` commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["extract", "base", "generate", "balance", "validate", "train", "baseline", "evaluate", "report"]

SMALL = {
    # A smaller vocabulary cuts text into more tokens: 512 keeps the longest example inside max_seq_len.
    # bitsandbytes packs 4-bit weights for CPU in blocks of 64 inputs, so 64 is the narrowest width it takes.
    "model": {
        "max_seq_len": 512,
        "tiny": {
            "vocab_size": 512,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "pretrain_steps": 20,
        },
    },
    "train": {"epochs": 1, "logging_steps": 10},
    "eval": {"max_new_tokens": 16, "batch_size": 64},
}


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def sh(args: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    # PYTHONPATH: `finetune` must run the copy's stages/, not the editable install's, or edits to the copy
    # would change DVC's view of the code without changing the code that runs.
    env = {
        **os.environ,
        "PYTHONPATH": str(cwd),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
        **(env or {}),
    }
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def copy_repo(dst: Path, overrides: dict | None = None, env: dict | None = None) -> Path:
    """What a clone of ours holds (tracked + untracked-not-ignored files), with params merged with `overrides`
    (SMALL by default), committed in a new git repo. No dvc.lock: every stage is due to run."""
    files = sh(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    (dst / "dvc.lock").unlink(missing_ok=True)
    params = merge(yaml.safe_load((dst / "params.yaml").read_text()), SMALL if overrides is None else overrides)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], dst, env=env)
    sh(["git", "add", "-A"], dst, env=env)
    sh(["git", "commit", "-qm", "copy"], dst, env=env)
    return dst


# SMALL, cut further, for tests of DVC bookkeeping (experiments, sharing), not of what training learns.
FAST = merge(
    SMALL,
    {
        # bitsandbytes' 4-bit matmuls are the slowest part of a CPU run (3x here); test_pipeline covers QLoRA.
        "quant": {"load_in_4bit": False},
        # No minority upsampling: balance caps every task at 2x the smallest (WIRING, 5 examples), so train holds
        # 75 examples instead of 750: 5 optimiser steps.
        "balance": {"max_upsample": 1},
        # Capping drops train sources, so val holds ~37% of the sources instead of 20%; the gate would stop there.
        "validate": {"val_fraction_tolerance": 0.5},
        "train": {"logging_steps": 1},  # 5 steps: a loss curve of 5 points, not 1
        "eval": {"max_new_tokens": 8},
    },
)
