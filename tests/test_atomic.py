"""No stage leaves a partial output: outputs are written to a hidden temporary sibling and renamed when complete.

A stage killed while writing leaves its output as it was (the previous complete version, or absent). SIGINT (Ctrl-C)
also removes the temporary; SIGKILL cannot run any cleanup, so there the contract is that the final path is never
partial, the leftover `.NAME.xxxxxxxx.tmp` is hidden, DVC does not count it as an output, and the next write of that
output sweeps it away.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetune.io import atomic_path, write_jsonl
from tests.conftest import params_file
from tests.dvcrepo import env_for, sh

ROWS = 30_000  # x ~1.6 kB of text: a ~50 MB block file, which takes most of a second to write on 2 cores: the
# signal must land inside the write even when a second test worker loads the machine


def write_parts_table(path: Path, tag: str) -> None:
    """A parts table (not a product catalog: no model_code column), one block per row, `tag` in every row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["part", "note"])
        w.writerows(
            [f"P-{i}", f"{tag} " + "the flue seal is checked at every annual service " * 32] for i in range(ROWS)
        )


def temporaries(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.tmp"))


def interrupt_while_writing(args: list[str], cwd: Path, out: Path, sig: int) -> subprocess.Popen:
    """Start `args`, wait until the temporary of `out` appears (the write has begun), send `sig` to the process group.

    Watching for the temporary instead of sleeping a fixed time makes the signal land inside the write on a fast or
    a loaded machine alike; the write takes ~0.8 s and the poll wakes every millisecond.
    """
    # A suite started in the background (`bash .ci/run &`, nohup in a script) ignores SIGINT, and Python keeps an
    # inherited "ignore": the stage would never see this Ctrl-C. It starts as from a terminal, SIGINT at its default
    # (set, then exec: a default survives exec; preexec_fn is unsafe in a process with threads).
    default_int = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", default_int, *args],
        cwd=cwd,
        env=env_for(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not temporaries(out.parent, out.name):
        if proc.poll() is not None:
            raise AssertionError(f"{args} ended before writing: {proc.communicate()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{args} never started writing {out}")
        time.sleep(0.001)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    return proc


def test_a_temporary_that_cannot_be_made_leaves_ctrl_c_unblocked(tmp_path, monkeypatch):
    # A blocked mask outlives the failed write, and every process this one starts after inherits it: deaf to Ctrl-C.
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tempfile.mkstemp", full)
    with pytest.raises(OSError, match="No space"), atomic_path(tmp_path / "out.jsonl"):
        pass
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


@pytest.fixture
def previous(tmp_path) -> Path:
    """A complete blocks.jsonl from an earlier run, which an interrupted run must leave as it is."""
    out = tmp_path / "out" / "blocks.jsonl"
    write_jsonl(out, [{"id": "old", "text": "from the previous run"}])
    write_parts_table(tmp_path / "raw" / "parts.csv", "new")
    return out


def extract_args(out: Path) -> list[str]:
    args = ["finetune", "extract", "--input", "raw", "--output", str(out), "--metrics", str(out.parent / "m.json")]
    return [*args, "--rejects", str(out.parent / "r.json")]


def test_ctrl_c_while_writing_leaves_the_previous_output_and_no_temporary(tmp_path, previous):
    before = previous.read_bytes()
    proc = interrupt_while_writing(extract_args(previous), tmp_path, previous, signal.SIGINT)
    err = proc.stderr.read().decode()
    assert proc.returncode == 130 and "aborted" in err, err  # stages/cli.py's answer to Ctrl-C
    assert previous.read_bytes() == before
    assert temporaries(previous.parent, previous.name) == []


def test_sigkill_while_writing_never_leaves_a_partial_output_and_the_next_run_sweeps_the_temporary(tmp_path, previous):
    before = previous.read_bytes()
    proc = interrupt_while_writing(extract_args(previous), tmp_path, previous, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert previous.read_bytes() == before
    # The half-written data went to the hidden temporary: that is what atomicity saved the output from.
    [leftover] = temporaries(previous.parent, previous.name)
    assert leftover.read_bytes().count(b"\n") < ROWS

    sh(extract_args(previous), tmp_path)
    assert sum(1 for _ in previous.open(encoding="utf-8")) == ROWS
    assert temporaries(previous.parent, previous.name) == []


@pytest.mark.slow  # real `dvc repro`, three times
def test_sigkill_of_dvc_repro_mid_write_leaves_dvc_a_consistent_workspace(tmp_path):
    """Under `dvc repro`, killed mid-write: the out is absent, never partial; `dvc status` names the changed dep and
    the missing outs and nothing else; `dvc checkout` brings the previous version back; the next `dvc repro` clears
    the killed process's lock entry, finishes the job and sweeps the temporary."""
    repo = tmp_path / "repo"
    write_parts_table(repo / "domains/heating/raw/parts.csv", "first")
    repo.mkdir(parents=True, exist_ok=True)
    params_file(repo / "params.yaml", {"extract": {"min_chars": 40}})
    stage = {
        "cmd": "finetune extract --input domains/heating/raw --output data/interim/heating/blocks.jsonl "
        "--metrics metrics/extract/heating.json --rejects metrics/rejects/heating.json",
        "deps": ["domains/heating/raw"],
        "params": ["extract.min_chars"],
        "outs": ["data/interim/heating/blocks.jsonl"],
        "metrics": [{"metrics/extract/heating.json": {"cache": False}}],
    }
    (repo / "dvc.yaml").write_text(json.dumps({"stages": {"extract": stage}}))  # JSON is YAML
    sh(["git", "init", "-q"], repo)
    sh(["dvc", "init", "-q"], repo)
    sh(["dvc", "repro"], repo)
    out = repo / "data/interim/heating/blocks.jsonl"
    first = out.read_bytes()

    write_parts_table(repo / "domains/heating/raw/parts.csv", "second")
    proc = interrupt_while_writing(["dvc", "repro"], repo, out, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    # DVC deletes a cached out before running its stage, so here "as it was" means absent, never partial.
    assert not out.exists()
    assert len(temporaries(out.parent, out.name)) == 1
    status = json.loads(sh(["dvc", "status", "--json"], repo).stdout)
    # The input changed and the outs are gone; the hidden temporary is no out of DVC's, so it is not listed.
    assert status == {
        "extract": [
            {"changed deps": {"domains/heating/raw": "modified"}},
            {
                "changed outs": {
                    "data/interim/heating/blocks.jsonl": "deleted",
                    "metrics/extract/heating.json": "deleted",
                }
            },
        ]
    }, status
    # The previous complete version is one command away, in the cache.
    sh(["dvc", "checkout", "data/interim/heating/blocks.jsonl"], repo)
    assert out.read_bytes() == first

    again = sh(["dvc", "repro"], repo)
    assert "Running stage 'extract'" in again.stdout
    assert b"second" in out.read_bytes() and b"first" not in out.read_bytes()
    assert temporaries(out.parent, out.name) == []
    assert json.loads(sh(["dvc", "status", "--json"], repo).stdout) == {}


# --- atomic_path itself ---------------------------------------------------------------------------------------------


def fill(tmp: Path, is_dir: bool, text: str) -> None:
    (tmp / "weights" if is_dir else tmp).write_text(text)


@pytest.mark.parametrize("is_dir", [False, True], ids=["file", "dir"])
def test_atomic_path_keeps_the_old_output_when_interrupted_and_leaves_nothing_behind(tmp_path, is_dir):
    # KeyboardInterrupt is not an Exception: a handler written `except Exception` would leave the temporary.
    out = tmp_path / ("model" if is_dir else "out.jsonl")
    with atomic_path(out, is_dir=is_dir) as tmp:
        fill(tmp, is_dir, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(out, is_dir=is_dir) as tmp:
        fill(tmp, is_dir, "half")
        raise KeyboardInterrupt
    assert ((out / "weights") if is_dir else out).read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize("is_dir", [False, True], ids=["file", "dir"])
def test_atomic_path_sweeps_what_a_killed_write_of_the_same_output_left(tmp_path, is_dir):
    out = tmp_path / ("model" if is_dir else "out.jsonl")
    # What SIGKILL leaves: a temporary mid-write and, for a directory killed mid-swap, the old one moved aside.
    leftover = tmp_path / f".{out.name}.k1ll3d_x.tmp"
    if is_dir:
        leftover.mkdir()
    else:
        leftover.touch()
    (tmp_path / f".{out.name}.old").mkdir()
    # Look-alikes that belong to other outputs or to the user are left alone.
    keep = [f".{out.name}.x.k1ll3d_x.tmp", f".{out.name}.tmp", f"{out.name}.k1ll3d_x.tmp", ".other.k1ll3d_x.tmp"]
    for name in keep:
        (tmp_path / name).touch()
    with atomic_path(out, is_dir=is_dir) as tmp:
        fill(tmp, is_dir, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, *keep])
