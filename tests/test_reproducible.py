"""Same inputs, same bytes: the base model and the adapter do not depend on the process's hash seed, and the base not
on how many CPU threads built it. The adapter does depend on the thread count with the packages requirements.lock pins
(measured 2026-12-06, also at the code of 2026-11-30): its hashes are compared between machines of the same kind and
core count (docs/environment.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.io import write_jsonl
from tests.conftest import HEATING_TASKS, REPO, TINY_BLOCKS, repo_params, shrink, typed, write_params

pytestmark = pytest.mark.slow


def run(cwd: Path, threads: int, *args, seed: int = 0) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONHASHSEED"] = str(seed)  # set iteration order differs between processes: it must not reach a file
    cmd = [sys.executable, "-c", "from finetune.cli import main; main()", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_base_is_byte_identical_with_one_or_two_threads_and_the_adapter_across_hash_seeds(tmp_path):
    from finetune.generation.examples import run as generate
    from finetune.generation.taskfile import load

    params = shrink(repo_params())
    write_params(tmp_path / "params.yaml", params)
    write_jsonl(tmp_path / "blocks.jsonl", TINY_BLOCKS)
    examples = generate(TINY_BLOCKS, typed(params).generate, load(HEATING_TASKS))
    write_jsonl(tmp_path / "train.jsonl", examples[:12])
    write_jsonl(tmp_path / "val.jsonl", examples[12:16])
    built = {}
    # (threads, hash seed) of each build: 1 vs 2 threads for the base; two hash seeds at 2 threads for the adapter.
    for threads, seed in ((1, 1), (2, 2), (2, 3)):
        out = tmp_path / f"t{threads}s{seed}"  # the same relative paths in all: the model card names them
        out.mkdir()
        run(out, threads, "base", "--blocks", "../blocks.jsonl", "--output", "base", "--params", "../params.yaml",
            seed=seed)  # fmt: skip
        run(
            out, threads, "train", "--train", "../train.jsonl", "--val", "../val.jsonl", "--model", "base",
            "--output", "adapter", "--checkpoints", "ckpt", "--metrics", "train.json", "--live-dir", "live",
            "--params", "../params.yaml", seed=seed,
        )  # fmt: skip
        built[threads, seed] = {
            name: (out / name).read_bytes()
            for name in (
                "base/model.safetensors",
                "base/tokenizer.json",
                "adapter/adapter_model.safetensors",
                "adapter/adapter_config.json",  # peft wrote its target_modules in hash-seed order
                "adapter/README.md",
            )  # fmt: skip
        }
    for name in built[2, 2]:
        assert built[2, 2][name] == built[2, 3][name], f"{name} differs between two hash seeds"
        if name.startswith("base/"):
            assert built[1, 1][name] == built[2, 2][name], f"{name} differs between 1 and 2 threads"
