"""End to end: the real `dvc repro` in a temporary copy of the repo, with small params so it runs in minutes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["extract", "base", "generate", "balance", "validate", "train", "baseline", "evaluate"]

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


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
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
    }
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git+DVC repo holding what a clone of ours holds, with small params, after one `dvc repro`."""
    dst = tmp_path_factory.mktemp("pipeline") / "repo"
    files = sh(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    (dst / "dvc.lock").unlink(missing_ok=True)  # a clean slate: every stage must run
    params = merge(yaml.safe_load((dst / "params.yaml").read_text()), SMALL)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-qm", "copy"], dst)
    first = sh(["dvc", "repro"], dst)
    assert ran_stages(first.stdout) == set(STAGES), first.stdout
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-qm", "repro"], dst)
    return dst


def test_repro_writes_every_output(repo):
    for path in [
        "data/interim/blocks.jsonl",
        "data/interim/examples.jsonl",
        "data/processed/train.jsonl",
        "data/processed/val.jsonl",
        "metrics/validation.json",
        "reports/validation/index.html",
        "models/base/model.safetensors",
        "models/base/tokenizer.json",
        "models/adapter/adapter_config.json",
        "models/adapter/adapter_model.safetensors",
        "models/adapter/README.md",
        "metrics/train.json",
        "metrics/train/plots/metrics/loss.tsv",
        "metrics/eval.json",
        "reports/eval.md",
        "reports/eval.png",
    ]:
        assert (repo / path).is_file(), path
    assert json.loads((repo / "metrics/validation.json").read_text())["success"] is True
    assert not list((repo / "models/checkpoints").glob("checkpoint-*")), "a finished run leaves only the adapter"


def test_eval_metrics_have_baseline_finetuned_and_delta_per_task(repo):
    result = json.loads((repo / "metrics/eval.json").read_text())
    assert set(result) == {"baseline", "finetuned", "delta"}
    val_tasks = {json.loads(line)["task"] for line in (repo / "data/processed/val.jsonl").read_text().splitlines()}
    for side in ("baseline", "finetuned", "delta"):
        assert set(result[side]) == {"overall"} | val_tasks
        for group in result[side].values():
            assert {"exact_match", "rouge_l"} <= set(group)
    assert result["delta"]["overall"]["rouge_l"] == pytest.approx(
        result["finetuned"]["overall"]["rouge_l"] - result["baseline"]["overall"]["rouge_l"]
    )


def test_second_repro_runs_nothing(repo):
    out = sh(["dvc", "repro"], repo).stdout
    assert ran_stages(out) == set()
    assert "Data and pipelines are up to date" in out


def test_lora_rank_experiment_reruns_train_and_evaluate_only(repo):
    out = sh(["dvc", "exp", "run", "-S", "lora.r=4"], repo).stdout
    assert ran_stages(out) == {"train", "evaluate"}, out
    config = json.loads((repo / "models/adapter/adapter_config.json").read_text())
    assert config["r"] == 4


def test_editing_a_generate_template_reruns_generate_onwards_only(repo):
    tasks = repo / "stages/tasks.py"
    original = tasks.read_text()
    edited = original.replace(
        '"Tell me the {parameter} for the {subject}."', '"Give me the {parameter} for the {subject}."'
    )
    assert edited != original
    tasks.write_text(edited)
    out = sh(["dvc", "repro"], repo).stdout
    assert ran_stages(out) == {"generate", "balance", "validate", "train", "baseline", "evaluate"}, out
