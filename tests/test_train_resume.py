"""Runs that do not simply finish. A `dvc repro` killed (SIGKILL, no clean-up) between two checkpoints resumes on
the next `dvc repro` from the last complete one: same global step, the full number of steps in the end, one
continuous DVCLive curve, and no half-written adapter or temporary folder at any point. A run whose loss turns NaN
stops with one line and no adapter. The adapter kept is the checkpoint with the lowest val loss, not the last.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import assert_ok, invoke, merge, slow_fixture, write_params
from tests.dvcrepo import SMALL, copy_repo, env_for, ran_stages, sh

BATCH, EPOCHS = 5, 2
# One torch thread in the stages this file runs: for this tiny model a second thread gains little on an idle machine,
# and on a busy one (another job on the same 2 cores) spinning threads made training several times slower.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
RESUME = {
    # No upsampling and at most 2x the smallest task (5 WIRING examples): 75 train examples, 15 steps of 5 an epoch,
    # 30 steps in all, with a checkpoint (and a val evaluation) every 10. A tenth of the sources in val (~50
    # examples) keeps those evaluations short.
    "balance": {"max_upsample": 1},
    "split": {"val_fraction": 0.1},
    "train": {
        "epochs": EPOCHS,
        "per_device_train_batch_size": BATCH,
        "eval_strategy": "steps",
        "eval_steps": 10,
        "logging_steps": 1,
        "warmup_steps": 0,
    },
}


def curve(root: Path, name: str = "loss") -> list[tuple[int, float]]:
    """(step, value) rows of a DVCLive curve under root/metrics/train."""
    with (root / "metrics/curves/heating/plots/metrics" / f"{name}.tsv").open() as fh:
        return [(int(r["step"]), float(r[name.split("/")[-1]])) for r in csv.DictReader(fh, delimiter="\t")]


def complete_checkpoints(repo: Path) -> dict[int, int]:
    """checkpoint-N -> the global step its trainer_state.json records, for checkpoints whose state is whole."""
    found = {}
    for c in (repo / "models/checkpoints/heating").glob("checkpoint-*"):
        try:
            found[int(c.name.split("-")[1])] = json.loads((c / "trainer_state.json").read_text())["global_step"]
        except (OSError, ValueError):
            continue  # being written
    return found


def past_a_checkpoint(repo: Path) -> bool:
    steps = complete_checkpoints(repo).values()
    try:
        return bool(steps) and max(s for s, _ in curve(repo)) > max(steps)
    except (OSError, ValueError, KeyError):
        return False  # the curve is not there yet, or its last row is being written


def start(args: list[str], repo: Path, log: Path) -> subprocess.Popen:
    # Its own process group, so one killpg reaches dvc, the shell it starts and `finetune train` under it.
    with log.open("w") as out:
        return subprocess.Popen(
            args, cwd=repo, env=env_for(repo, ONE_THREAD), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@slow_fixture(scope="module")
def killed(tmp_path_factory):
    """The repo after `dvc repro` up to validate and a `dvc repro train` killed between two checkpoints: once one is
    complete and the run has logged a step past it."""
    repo = copy_repo(tmp_path_factory.mktemp("resume") / "repo", merge(SMALL, RESUME))
    sh(["dvc", "repro", "validate@heating"], repo, env=ONE_THREAD)
    log = repo.parent / "killed.log"
    proc = start(["dvc", "repro", "train@heating"], repo, log)
    deadline = time.monotonic() + 90
    while not past_a_checkpoint(repo):
        assert proc.poll() is None, f"train ended before its first checkpoint:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {
        "repo": repo,
        "checkpoints": complete_checkpoints(repo),
        "curve": curve(repo),
        "models": sorted(p.name for p in (repo / "models").iterdir() if p.name != ".gitignore"),
        "n_train": len((repo / "data/processed/heating/train.jsonl").read_text().splitlines()),
    }


@pytest.fixture(scope="module")
def resumed(killed):
    out = sh(["dvc", "repro", "train@heating"], killed["repo"], env=ONE_THREAD)
    return {**killed, "log": out.stdout + out.stderr, "ran": ran_stages(out.stdout)}


def test_the_kill_left_a_checkpoint_and_no_adapter_or_temporary_folder(killed):
    assert killed["checkpoints"]
    # DVC deletes the old adapter before running train (it is a cached out), and the killed run never got to save
    # one, so there is none: never a half-written one, and no `.adapter.*.tmp` beside it.
    assert killed["models"] == ["base", "checkpoints"]
    assert max(s for s, _ in killed["curve"]) > max(killed["checkpoints"].values())  # killed between checkpoints


def test_rerun_resumes_from_the_last_complete_checkpoint_and_finishes_every_step(resumed):
    step = max(resumed["checkpoints"].values())
    total = math.ceil(resumed["n_train"] / BATCH) * EPOCHS
    assert 0 < step < total
    assert resumed["ran"] == {"train@heating"}
    assert f"resuming from models/checkpoints/heating/checkpoint-{step} at step {step}" in resumed["log"]
    assert f"trained steps {step + 1}..{total} of {total}" in resumed["log"]
    metrics = json.loads((resumed["repo"] / "metrics/train/heating.json").read_text())
    assert metrics["global_step"] == total and metrics["epochs"] == EPOCHS


def test_the_curve_continues_from_the_checkpoint_without_a_restart_or_duplicate_steps(resumed):
    step = max(resumed["checkpoints"].values())
    rows = curve(resumed["repo"])
    steps = [s for s, _ in rows]
    total = math.ceil(resumed["n_train"] / BATCH) * EPOCHS
    assert steps == list(range(1, total + 1))  # logging_steps 1: one row per step, each once, in order
    # Up to the checkpoint: the killed run's rows, untouched. After it: the resumed run's (the killed run's rows
    # past the checkpoint were dropped, because those steps were trained again).
    assert [r for r in rows if r[0] <= step] == [r for r in resumed["curve"] if r[0] <= step]
    evals = [s for s, _ in curve(resumed["repo"], "eval/loss")]
    assert evals == sorted(set(evals)) and evals[-1] == total


def test_a_finished_resumed_run_leaves_the_adapter_and_no_checkpoint_or_temporary_folder(resumed):
    repo = resumed["repo"]
    assert (repo / "models/heating/adapter_model.safetensors").is_file()
    assert not list((repo / "models/checkpoints/heating").glob("checkpoint-*"))
    assert sorted(p.name for p in (repo / "models").iterdir() if p.name != ".gitignore") == [
        "base",
        "checkpoints",
        "heating",
    ]
    assert (
        ran_stages(sh(["dvc", "repro", "train@heating"], repo).stdout) == set()
    )  # the lock now records the finished run


# ---- a run that diverges, and a run whose val loss turns: in-process on the tiny fixtures of conftest.py ----


def train_args(root: Path, splits, base, params_file) -> list[str]:
    args = ["--train", splits.train, "--val", splits.val, "--model", base, "--output", root / "models/heating"]
    args += ["--checkpoints", root / "models/checkpoints/heating", "--metrics", root / "metrics/train/heating.json"]
    return [str(a) for a in args + ["--live-dir", root / "metrics/curves/heating", "--params", params_file]]


@pytest.mark.slow  # trains
def test_a_diverging_run_stops_with_one_line_naming_the_step_and_writes_no_adapter(
    tmp_path, monkeypatch, capfd, tiny_base, tiny_splits, small_params
):
    from finetune.cli import main

    # lr 1e6: the first Adam steps blow the LoRA weights up until the logits overflow (NaN at step 3 here).
    small_params["train"].update(learning_rate=1e6, epochs=5)
    params = write_params(tmp_path / "params.yaml", small_params)
    monkeypatch.chdir(tmp_path)  # DVCLive looks for a repo from the cwd
    with pytest.raises(SystemExit) as exit_:
        main(["train", *train_args(tmp_path, tiny_splits, tiny_base, params)])
    assert exit_.value.code == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "training diverged" in line]
    step = int(re.fullmatch(r"Error: loss is nan at step (\d+): training diverged\. .*", line)[1])
    assert not (tmp_path / "models/heating").exists() and not (tmp_path / "metrics/train/heating.json").exists()
    # Each step before it logged a finite loss (logging_steps 1); the NaN itself never reached the curve.
    assert [s for s, _ in curve(tmp_path)] == list(range(1, step))
    assert all(math.isfinite(v) for _, v in curve(tmp_path))


@pytest.mark.slow  # trains
def test_the_adapter_kept_is_the_checkpoint_with_the_lowest_val_loss_not_the_last(
    tmp_path, monkeypatch, tiny_base, tiny_splits, small_params
):
    """The tiny fixture model learns too little to overfit in seconds, so the val losses of the four epochs are
    scripted (3, 1, 2, 4: best at epoch 2, rising after it); everything else is the real run, whose checkpoints
    are snapshotted as they are saved to see which one became the adapter."""
    import torch
    import transformers
    from safetensors.torch import load_file

    import finetune.training.trainer
    import stages.train

    script = iter([3.0, 1.0, 2.0, 4.0])
    real_loop = transformers.Trainer.evaluation_loop

    def scripted_loop(self, *args, **kwargs):
        out = real_loop(self, *args, **kwargs)
        out.metrics["eval_loss"] = next(script, out.metrics["eval_loss"])  # the final evaluation stays real
        return out

    saved = {}

    class Snapshot(transformers.TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            saved[state.global_step] = load_file(folder / "adapter_model.safetensors")

    real_callbacks = finetune.training.trainer.callbacks
    monkeypatch.setattr(transformers.Trainer, "evaluation_loop", scripted_loop)
    monkeypatch.setattr(
        finetune.training.trainer, "callbacks", lambda train, live: real_callbacks(train, live) + [Snapshot()]
    )
    small_params["train"].update(epochs=4)  # 12 examples / batch 4: 3 steps an epoch, 12 in all
    params = write_params(tmp_path / "params.yaml", small_params)
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke(stages.train.cli, train_args(tmp_path, tiny_splits, tiny_base, params)))

    assert curve(tmp_path, "eval/loss") == [(3, 3.0), (6, 1.0), (9, 2.0), (12, 4.0)]
    metrics = json.loads((tmp_path / "metrics/train/heating.json").read_text())
    assert (metrics["best_epoch"], metrics["best_eval_loss"], metrics["global_step"]) == (2.0, 1.0, 12)
    assert sorted(saved) == [3, 6, 9, 12]
    adapter = load_file(tmp_path / "models/heating/adapter_model.safetensors")
    assert adapter.keys() == saved[6].keys()
    assert all(torch.equal(adapter[k], saved[6][k]) for k in adapter)  # epoch 2's weights, bit for bit
    assert not all(torch.equal(adapter[k], saved[12][k]) for k in adapter)  # not the last epoch's


# ---- the pieces, on hand-made folders ----


def test_a_checkpoint_cut_short_is_discarded_and_the_last_complete_one_resumed(tmp_path):
    from finetune.training.checkpoints import last_checkpoint, prepare_checkpoints

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "run.json").write_text('{"fingerprint": "fp"}')
    for step, state in [(4, '{"global_step": 4}'), (8, '{"global_st'), (12, None)]:  # whole, half-written, none
        (folder / f"checkpoint-{step}").mkdir()
        if state is not None:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert prepare_checkpoints(folder, "fp") is True
    assert last_checkpoint(folder) == folder / "checkpoint-4"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-4", "run.json"]


def test_resuming_restores_the_checkpoints_copy_of_the_curves_and_drops_later_rows(tmp_path):
    from finetune.training.checkpoints import restore_curves

    ckpt = tmp_path / "checkpoint-2"
    (ckpt / "dvclive/plots/metrics").mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text('{"global_step": 2}')
    (ckpt / "dvclive/plots/metrics/loss.tsv").write_text("step\tloss\n1\t5.0\n2\t4.0\n")
    live = tmp_path / "live"
    restore_curves(ckpt, live)  # DVC deleted the live folder: the checkpoint's copy comes back
    assert (live / "plots/metrics/loss.tsv").read_text() == "step\tloss\n1\t5.0\n2\t4.0\n"
    (live / "plots/metrics/loss.tsv").write_text("step\tloss\n1\t5.0\n2\t4.0\n3\t3.0\n")
    (ckpt / "dvclive").rename(tmp_path / "elsewhere")  # a checkpoint without a copy: the rows after it are cut
    restore_curves(ckpt, live)
    assert (live / "plots/metrics/loss.tsv").read_text() == "step\tloss\n1\t5.0\n2\t4.0\n"
