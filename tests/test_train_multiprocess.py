"""`train.num_processes: 2` on a CPU: `finetune train` re-executes itself under `accelerate launch`, two ranks train
one DDP model over gloo on the 4-bit base, and only rank 0 writes the adapter, metrics and curves.

What this proves on a CPU is the wiring (the launch, the ranks, gloo all-reduce, a sharded sampler, rank-0-only
outputs, QLoRA under DDP); NCCL on GPUs and FSDP/DeepSpeed configs take the same path with another accelerate
config, and are not run here.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

from finetune.training.launch import launch_command
from tests.conftest import REPO, repo_params, shrink, slow_fixture, typed, write_params


@slow_fixture(scope="module")
def ddp(tmp_path_factory, tiny_base, tiny_splits):
    params = shrink(repo_params())
    params["train"].update(num_processes=2, epochs=2)
    root = tmp_path_factory.mktemp("ddp")
    args = ["--train", tiny_splits.train, "--val", tiny_splits.val, "--model", tiny_base]
    args += ["--output", root / "adapter", "--checkpoints", root / "checkpoints", "--metrics", root / "train.json"]
    args += ["--live-dir", root / "live", "--params", write_params(root / "params.yaml", params)]
    # A real process, as a user's shell or DVC starts it: its ranks' stderr is ours to read.
    proc = subprocess.run(
        [sys.executable, "-m", "finetune.cli", "train", *map(str, args)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"root": root, "log": proc.stderr, "n_train": len(tiny_splits.train.read_text().splitlines())}


def test_two_ranks_train_one_ddp_model_over_gloo_on_the_4bit_base(ddp):
    ranks = re.findall(
        r"\[train\] rank (\d) of 2 \((\w+), (\w+), ([\w-]+) base\): trained steps 1\.\.(\d+)", ddp["log"]
    )
    assert sorted(r[0] for r in ranks) == ["0", "1"], ddp["log"][-3000:]
    # quant.load_in_4bit stays on: bitsandbytes' 4-bit layers train under DDP on CPU as they do alone.
    assert {r[1:4] for r in ranks} == {("DistributedDataParallel", "gloo", "4-bit")}
    # The sampler shards the data: 12 examples / (2 ranks x batch 4) = 2 steps an epoch, where one process takes 3.
    steps = 2 * math.ceil(ddp["n_train"] / (2 * 4))
    assert {int(r[4]) for r in ranks} == {steps}
    metrics = json.loads((ddp["root"] / "train.json").read_text())
    assert (metrics["global_step"], metrics["num_processes"]) == (steps, 2)


def test_only_rank_0_writes_the_outputs(ddp):
    assert ddp["log"].count("[train] adapter ->") == 1
    assert (ddp["root"] / "adapter/adapter_model.safetensors").is_file()
    assert not list((ddp["root"] / "checkpoints").glob("checkpoint-*"))
    with (ddp["root"] / "live/plots/metrics/loss.tsv").open() as fh:
        steps = [int(line.split("\t")[0]) for line in fh.read().splitlines()[1:]]
    assert steps == sorted(set(steps))  # one writer: each step once


def test_launch_command_is_accelerate_launch_of_this_same_command():
    cmd = launch_command(4, ["--params", "p.yaml"])
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--num_processes", "4"]
    assert "--multi_gpu" in cmd and cmd[-5:] == ["-m", "finetune.cli", "train", "--params", "p.yaml"]
    fsdp = launch_command(8, [], "fsdp.yaml")
    assert "--multi_gpu" not in fsdp and fsdp[fsdp.index("--config_file") + 1] == "fsdp.yaml"


def test_gpu_cost_counts_one_gpu_per_process_and_only_when_priced_and_on_a_gpu():
    from finetune.training.trainer import gpu_cost

    # The essential-oils team's run: 52 min on one 24 GB GPU at $0.44/h came to ~$0.38.
    assert gpu_cost(52 * 60, 1, 0.44, gpu=True) == pytest.approx({"gpu_hours": 52 / 60, "cost": 0.44 * 52 / 60})
    assert gpu_cost(3600, 4, 2.0, gpu=True) == {"gpu_hours": 4.0, "cost": 8.0}
    assert gpu_cost(3600, 1, None, gpu=True) == {}  # train.gpu_hourly_cost: null, the default
    assert gpu_cost(3600, 1, 2.0, gpu=False) == {}  # a CPU run costs no GPU-hours


def test_the_price_is_not_part_of_the_checkpoint_fingerprint(tmp_path, tiny_base, tiny_splits):
    from finetune.training.checkpoints import fingerprint

    params = shrink(repo_params())
    priced = {**params, "train": {**params["train"], "gpu_hourly_cost": 2.5}}
    more = {**params, "train": {**params["train"], "num_processes": 2}}
    first = fingerprint(typed(params), tiny_splits.train, tiny_splits.val, tiny_base)
    assert (
        fingerprint(typed(priced), tiny_splits.train, tiny_splits.val, tiny_base) == first
    )  # a price edit keeps them
    assert fingerprint(typed(more), tiny_splits.train, tiny_splits.val, tiny_base) != first  # another batch: a new run
