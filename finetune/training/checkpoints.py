"""Resumable training: trainer checkpoints guarded by a fingerprint of the run, with the DVCLive curves they saw.

Checkpoints go to a folder dvc.yaml does not declare, so DVC never deletes it: a killed run resumes from its last
complete checkpoint on the next `dvc repro`. Each checkpoint holds a copy of the DVCLive curves up to its step, which
the resumed run puts back (DVC deletes metrics/train, an out, before rerunning the stage) and continues. Checkpoints
of a run with other params or data are discarded, never resumed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

from finetune.io import content_id
from finetune.params import Params

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


def fingerprint(params: Params, train_path, val_path, base_path, init_from=None) -> str:
    """What a checkpoint must match to be resumed: the params train reads, both splits, the base weights and the
    adapter training started from, if any."""
    # Every weights file: a hub model of a few GB comes in shards (model-00001-of-00002.safetensors, ...).
    weights = sorted(Path(base_path).glob("*.safetensors"))
    weights += sorted(Path(init_from).glob("*.safetensors")) if init_from else []
    p = {
        "model": params.model.model_dump(),
        "quant": params.quant.model_dump(),
        "lora": params.lora.model_dump(),
        "train": params.train.model_dump(exclude=set(NOT_TRAINING)),
    }
    return content_id(
        json.dumps(p, sort_keys=True), file_md5(train_path), file_md5(val_path), *(file_md5(w) for w in weights)
    )
