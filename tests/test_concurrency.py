"""Two `dvc repro` in one repository at once: the second stops within seconds without touching anything, with one of
DVC's two lock messages, and the first finishes as if alone.

DVC holds the repository lock (.dvc/tmp/lock) while it works out what to run and records results, and releases it
while a stage's command runs; the stage's deps and outs are then held in .dvc/tmp/rwlock instead. So a second
`dvc repro` started during a stage gets "'models/base' is busy, it is being blocked by: (PID …): dvc repro", and one
started between stages gets "Unable to acquire lock".

The pipeline run is the session's shared one (`pipeline_run`, tests/conftest.py): the second `dvc repro` is started
while its train stage runs. docs/experiments.md quotes both messages.
"""

from __future__ import annotations

import json
import re

from tests.conftest import REPO
from tests.dvcrepo import STAGES, ran_stages, sh

LOCK_MESSAGES = re.compile(r"Unable to acquire lock|is busy, it is being blocked by")


def test_a_second_repro_stops_within_seconds_with_dvc_s_lock_message_and_runs_nothing(pipeline_run):
    output = pipeline_run.second.stdout + pipeline_run.second.stderr
    assert pipeline_run.second.returncode != 0, output
    assert LOCK_MESSAGES.search(output), output
    assert ran_stages(output) == set(), output
    # DVC retries the repository lock for 3 s; the rest is its start-up.
    assert pipeline_run.second_s < 30


def test_the_first_repro_finishes_every_stage_as_if_alone(pipeline_run):
    assert pipeline_run.first_rc == 0, pipeline_run.first_out[-3000:] + pipeline_run.first_err[-3000:]
    assert ran_stages(pipeline_run.first_out) == set(STAGES)
    status = sh(["dvc", "status"], pipeline_run.repo).stdout
    assert "Data and pipelines are up to date" in status, status
    # Neither process left an entry in DVC's per-path lock file.
    rwlock = json.loads((pipeline_run.repo / ".dvc/tmp/rwlock").read_text())
    assert not any(rwlock.values()), rwlock


def test_the_lock_messages_the_docs_quote_are_dvc_s_own(pipeline_run):
    import zc.lockfile

    # Hold the repository lock as a running `dvc repro` does between stages.
    lock = zc.lockfile.LockFile(str(pipeline_run.repo / ".dvc/tmp/lock"))
    try:
        held = sh(["dvc", "repro"], pipeline_run.repo, check=False)
    finally:
        lock.close()
    assert held.returncode != 0
    assert "Unable to acquire lock" in held.stderr, held.stderr

    docs = " ".join((REPO / "docs/experiments.md").read_text().split())  # a quote may wrap across lines
    assert "Unable to acquire lock" in docs
    assert "is busy, it is being blocked by" in docs
