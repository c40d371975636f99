"""Two `dvc repro` in one repository at once: the second stops within seconds without touching anything, with one of
DVC's two lock messages, and the first finishes as if alone.

DVC holds the repository lock (.dvc/tmp/lock) while it works out what to run and records results, and releases it
while a stage's command runs; the stage's deps and outs are then held in .dvc/tmp/rwlock instead. So a second
`dvc repro` started during a stage gets "'models/base' is busy, it is being blocked by: (PID …): dvc repro", and one
started between stages gets "Unable to acquire lock". README, Experiments, quotes both.

The one pipeline run here is shared with tests/test_secrets.py (which greps its outputs for planted credentials), so
the suite pays for one extra `dvc repro`, not two.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from tests.dvcrepo import REPO, SMALL, STAGES, copy_repo, merge, ran_stages, sh
from tests.test_atomic import env_for

# Fake credentials in every variable the pipeline or its libraries might read. They share "FAKEplanted" so a
# secret that leaks cut or re-encoded is still found.
PLANTED = {
    "HF_TOKEN": "hf_FAKEplanted1234567890abcdef",
    "HUGGING_FACE_HUB_TOKEN": "hf_FAKEplantedHub0246813579",
    "OPENAI_API_KEY": "sk-FAKEplanted0987654321",
    "TEACHER_API_KEY": "sk-FAKEplantedTeacher55555",
}
# A tenth of an epoch (5 optimiser steps of 16) still trains, evaluates and saves a checkpoint like a full run.
FAST = merge(SMALL, {"train": {"epochs": 0.1}})
LOCK_MESSAGES = re.compile(r"Unable to acquire lock|is busy, it is being blocked by")

_RUN: dict[str, object] = {}


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
    for p in psutil.Process(first.pid).children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if any(Path(c).name == "finetune" for c in cmd) and name in cmd:
            return p
    return None


def _run(tmp: Path) -> SimpleNamespace:
    from tests.serving import FaultServer

    # The optional teacher LLM talks to a local OpenAI-style server, so the endpoint key is exercised too. It
    # echoes each question, and generate drops a paraphrase identical to its question: the data stays as it was.
    with FaultServer(answer=lambda prompt: prompt) as teacher:
        teacher_params = {
            "endpoint": teacher.url,
            "model": "teacher",
            "paraphrases": 1,
            "api_key_env": "TEACHER_API_KEY",
        }
        repo = copy_repo(tmp / "repo", merge(FAST, {"generate": {"teacher": teacher_params}}))
        logs = tmp / "logs"
        logs.mkdir()
        with open(logs / "first.out", "w") as out, open(logs / "first.err", "w") as err:
            first = subprocess.Popen(
                ["dvc", "repro"], cwd=repo, env=env_for(repo, PLANTED), stdout=out, stderr=err, start_new_session=True
            )
        try:
            # Train is the longest stage: start the second repro while it runs, as someone would by mistake.
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


def pipeline_run(tmp_path_factory) -> SimpleNamespace:
    """The shared run: `dvc repro` with planted credentials, and a second `dvc repro` started during its train."""
    if "run" not in _RUN:
        try:
            _RUN["run"] = _run(tmp_path_factory.mktemp("concurrent"))
        except BaseException as e:  # a failed run fails every test that needs it, without running it again
            _RUN["run"] = e
    if isinstance(_RUN["run"], BaseException):
        raise _RUN["run"]
    return _RUN["run"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    # Through `tests.test_concurrency`, the name tests/test_secrets.py imports it by: pytest itself imports this file
    # as plain `test_concurrency`, a second module object with its own _RUN, which would run the pipeline twice.
    import tests.test_concurrency as shared

    return shared.pipeline_run(tmp_path_factory)


def test_a_second_repro_stops_within_seconds_with_dvc_s_lock_message_and_runs_nothing(run):
    output = run.second.stdout + run.second.stderr
    assert run.second.returncode != 0, output
    assert LOCK_MESSAGES.search(output), output
    assert ran_stages(output) == set(), output
    # DVC retries the repository lock for 3 s; the rest is its start-up.
    assert run.second_s < 30


def test_the_first_repro_finishes_every_stage_as_if_alone(run):
    assert run.first_rc == 0, run.first_out[-3000:] + run.first_err[-3000:]
    assert ran_stages(run.first_out) == set(STAGES)
    status = sh(["dvc", "status"], run.repo).stdout
    assert "Data and pipelines are up to date" in status, status
    # Neither process left an entry in DVC's per-path lock file.
    rwlock = json.loads((run.repo / ".dvc/tmp/rwlock").read_text())
    assert not any(rwlock.values()), rwlock


def test_the_lock_messages_the_readme_quotes_are_dvc_s_own(run):
    import zc.lockfile

    # Hold the repository lock as a running `dvc repro` does between stages.
    lock = zc.lockfile.LockFile(str(run.repo / ".dvc/tmp/lock"))
    try:
        held = sh(["dvc", "repro"], run.repo, check=False)
    finally:
        lock.close()
    assert held.returncode != 0
    assert "Unable to acquire lock" in held.stderr, held.stderr

    readme = (REPO / "README.md").read_text()
    assert "Unable to acquire lock" in readme
    assert "is busy, it is being blocked by" in readme
