"""Real `dvc` in a temporary copy of this repository: the copy, the environment `dvc` and `finetune` run in, the
test-size params for whole pipeline runs, and the concurrent run that the session fixture `pipeline_run` makes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

from tests.conftest import CURRENT, REPO, SHRUNK, merge

# The stages that run once per domain, then what a copy of the repository runs: by default the heating domain alone
# (the others' runs are tests/test_domains.py's), so each stage once.
PER_DOMAIN = ["extract", "generate", "balance", "validate", "train", "baseline", "evaluate", "report", "interference"]
HEATING_ONLY = {"heating": {"init_from": "base"}}
STAGES = ["base", *(f"{s}@heating" for s in PER_DOMAIN), "compare"]


def at(domain: str, *stages: str) -> set[str]:
    """The names DVC runs these per-domain stages under: {"train@heating", …}."""
    return {f"{s}@{domain}" for s in stages}


# SHRUNK for the sample corpus. A smaller vocabulary cuts text into more tokens: 512 keeps the longest example
# inside max_seq_len.
SMALL = merge(
    SHRUNK,
    {
        "model": {"max_seq_len": 512, "tiny": {"vocab_size": 512, "pretrain_steps": 20}},
        "train": {"logging_steps": 10},
        "eval": {"batch_size": 64},
    },
)

# SMALL, cut further, for tests of DVC bookkeeping (experiments, sharing), not of what training learns.
FAST = merge(
    SMALL,
    {
        # Plain LoRA, a little faster than 4-bit on a CPU (no dequantising); the shared pipeline run covers QLoRA.
        "quant": {"load_in_4bit": False},
        # No minority upsampling: balance caps every task at 2x the smallest (WIRING, 5 examples), so train holds
        # 75 examples instead of 750: 5 optimiser steps.
        "balance": {"max_upsample": 1},
        "train": {"logging_steps": 1},  # 5 steps: a loss curve of 5 points, not 1
        "eval": {"max_new_tokens": 8},
    },
)

# The shared pipeline run: QLoRA as shipped, but a tenth of an epoch (5 optimiser steps of 16) still trains,
# evaluates and saves a checkpoint like a full run.
TENTH = merge(SMALL, {"train": {"epochs": 0.1}})

# Fake credentials in every variable the pipeline or its libraries might read, for the shared run. They share
# "FAKEplanted" so a secret that leaks cut or re-encoded is still found.
PLANTED = {
    "HF_TOKEN": "hf_FAKEplanted1234567890abcdef",
    "HUGGING_FACE_HUB_TOKEN": "hf_FAKEplantedHub0246813579",
    "OPENAI_API_KEY": "sk-FAKEplanted0987654321",
    "TEACHER_API_KEY": "sk-FAKEplantedTeacher55555",
}


def env_for(cwd: Path, extra: dict | None = None) -> dict:
    """The environment `dvc` and `finetune` run in, for `sh` and for processes a test starts with Popen."""
    # PYTHONPATH: `finetune` must run the copy's code, not the editable install's, or edits to the copy would
    # change DVC's view of the code without changing the code that runs; in a bare test repo, this checkout's.
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(cwd), str(REPO)]),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
        **(extra or {}),
    }


def sh(args: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    if args[0] == "dvc" and not CURRENT["slow"]:
        raise AssertionError(
            f"{' '.join(args)}: a test that runs the real dvc must be marked slow (tests/conftest.py)"
        )
    proc = subprocess.run(args, cwd=cwd, env=env_for(cwd, env), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@-]+)'", output))


def without(params: dict, overrides: dict) -> dict:
    """`params` less every key that `overrides` sets, at any depth (a section it empties stays, as `{}`)."""
    out = {}
    for key, value in params.items():
        if key not in overrides:
            out[key] = value
        elif isinstance(value, dict) and isinstance(overrides[key], dict):
            out[key] = without(value, overrides[key])
    return out


def copy_repo(dst: Path, overrides: dict | None = None, env: dict | None = None, domains: dict | None = None) -> Path:
    """What a clone of ours holds (tracked + untracked-not-ignored files), with params merged with `overrides`
    (SMALL by default) and `domains` in place of params.yaml's (the heating domain alone by default), committed in a
    new git repo. No dvc.lock: every stage is due to run."""
    files = sh(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    (dst / "dvc.lock").unlink(missing_ok=True)
    params = merge(yaml.safe_load((dst / "params.yaml").read_text()), SMALL if overrides is None else overrides)
    params["domains"] = HEATING_ONLY if domains is None else domains
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for own in (dst / "domains").glob("*/params.yaml"):  # the test's sizes win over a domain's own
        own.write_text(yaml.safe_dump(without(yaml.safe_load(own.read_text()), overrides or SMALL), sort_keys=False))
    sh(["git", "init", "-q"], dst, env=env)
    sh(["git", "add", "-A"], dst, env=env)
    sh(["git", "commit", "-qm", "copy"], dst, env=env)
    return dst


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a repository that dvc has run in: git history, DVC cache and outputs, so the copy starts where the
    run ended without rerunning anything."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if proc.poll() is not None:
            raise AssertionError(f"the first dvc repro exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return found


def stage_process(first: subprocess.Popen, name: str):
    """The running `finetune <name>` among the first repro's descendants, or None."""
    import psutil

    for p in psutil.Process(first.pid).children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if any(Path(c).name == "finetune" for c in cmd) and name in cmd:
            return p
    return None


def concurrent_repro(tmp: Path, teacher) -> SimpleNamespace:
    """`dvc repro` of a copy with TENTH params, PLANTED credentials and the teacher LLM at `teacher` (a running
    tests.serving.FaultServer), and a second `dvc repro` started while its train stage runs, as someone would by
    mistake. Returns the copy, the logs, both runs' results, the train stage's environment and the Authorization
    headers the teacher saw."""
    teacher_params = {
        "endpoint": teacher.url,
        "model": "teacher",
        "mode": "paraphrase",  # this teacher echoes the question: a paraphrase, never a JSON pair
        "paraphrases": 1,
        "api_key_env": "TEACHER_API_KEY",
    }
    repo = copy_repo(tmp / "repo", merge(TENTH, {"generate": {"teacher": teacher_params}}))
    logs = tmp / "logs"
    logs.mkdir()
    with open(logs / "first.out", "w") as out, open(logs / "first.err", "w") as err:
        first = subprocess.Popen(
            ["dvc", "repro"], cwd=repo, env=env_for(repo, PLANTED), stdout=out, stderr=err, start_new_session=True
        )
    try:
        # Train is the longest stage: the second repro starts while it runs.
        trainer = wait_for(lambda: stage_process(first, "train"), "train started", first)
        stage_env = trainer.environ()
        started = time.monotonic()
        second = sh(["dvc", "repro"], repo, check=False, env=PLANTED)
        second_s = time.monotonic() - started
        first.wait(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    return SimpleNamespace(
        repo=repo,
        logs=logs,
        first_rc=first.returncode,
        first_out=(logs / "first.out").read_text(),
        first_err=(logs / "first.err").read_text(),
        second=second,
        second_s=second_s,
        stage_env=stage_env,
        teacher_auth=list(teacher.authorization),
    )
