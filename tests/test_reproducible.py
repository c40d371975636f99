"""Same inputs, same bytes: the base model and the adapter do not depend on how many CPU threads built them, nor on
the process's hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.io import write_jsonl
from tests.conftest import HEATING_TASKS, REPO, TINY_BLOCKS, repo_params, shrink, typed, write_params

pytestmark = pytest.mark.slow


def run(cwd: Path, threads: int, *args) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONHASHSEED"] = str(threads)  # set iteration order differs between processes: it must not reach a file
    cmd = [sys.executable, "-c", "from finetune.cli import main; main()", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_base_and_adapter_are_byte_identical_with_one_or_two_threads(tmp_path):
    from finetune.generation.examples import run as generate
    from finetune.generation.taskfile import load

    params = shrink(repo_params())
    write_params(tmp_path / "params.yaml", params)
    write_jsonl(tmp_path / "blocks.jsonl", TINY_BLOCKS)
    examples = generate(TINY_BLOCKS, typed(params).generate, load(HEATING_TASKS))
    write_jsonl(tmp_path / "train.jsonl", examples[:12])
    write_jsonl(tmp_path / "val.jsonl", examples[12:16])
    built = {}
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"  # the same relative paths in both: the model card names them
        out.mkdir()
        run(out, threads, "base", "--blocks", "../blocks.jsonl", "--output", "base", "--params", "../params.yaml")
        run(
            out, threads, "train", "--train", "../train.jsonl", "--val", "../val.jsonl", "--model", "base",
            "--output", "adapter", "--checkpoints", "ckpt", "--metrics", "train.json", "--live-dir", "live",
            "--params", "../params.yaml",
        )  # fmt: skip
        built[threads] = {
            name: (out / name).read_bytes()
            for name in (
                "base/model.safetensors",
                "base/tokenizer.json",
                "adapter/adapter_model.safetensors",
                "adapter/adapter_config.json",  # peft wrote its target_modules in hash-seed order
                "adapter/README.md",
            )  # fmt: skip
        }
    for name in built[1]:
        assert built[1][name] == built[2][name], f"{name} differs between 1 and 2 threads"
