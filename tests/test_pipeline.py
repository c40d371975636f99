"""End to end: the real `dvc repro` in a temporary copy of the repo, with small params so it runs in minutes.

The run is the session's shared one (`pipeline_run`, tests/conftest.py); the tests that rerun stages work on a copy
of it, so the tests that only read it see it as the run left it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.dvcrepo import PER_DOMAIN, STAGES, at, copy_run, ran_stages, sh

STAGES_AFTER_EXTRACT = at("heating", *PER_DOMAIN[1:]) | {"compare"}


@pytest.fixture(scope="module")
def repo(pipeline_run, tmp_path_factory) -> Path:
    """A copy of the shared run's repository, outputs, cache and all, with the run committed."""
    dst = tmp_path_factory.mktemp("pipeline-copy") / "repo"
    copy_run(pipeline_run.repo, dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-qm", "repro"], dst)
    return dst


def test_repro_runs_every_stage_and_writes_every_output(pipeline_run):
    repo = pipeline_run.repo
    assert pipeline_run.first_rc == 0, pipeline_run.first_err[-3000:]
    assert ran_stages(pipeline_run.first_out) == set(STAGES), pipeline_run.first_out
    for path in [
        "data/interim/heating/blocks.jsonl",
        "data/interim/heating/examples.jsonl",
        "data/processed/heating/train.jsonl",
        "data/processed/heating/val.jsonl",
        "metrics/validation/heating.json",
        "reports/heating/validation/index.html",
        "models/base/model.safetensors",
        "models/base/tokenizer.json",
        "models/heating/adapter_config.json",
        "models/heating/adapter_model.safetensors",
        "models/heating/README.md",
        "metrics/train/heating.json",
        "metrics/curves/heating/plots/metrics/loss.tsv",
        "metrics/eval/heating.json",
        "reports/heating/eval.md",
        "reports/heating/eval.png",
    ]:
        assert (repo / path).is_file(), path
    assert json.loads((repo / "metrics/validation/heating.json").read_text())["success"] is True
    assert not list((repo / "models/checkpoints/heating").glob("checkpoint-*")), (
        "a finished run leaves only the adapter"
    )


def test_eval_metrics_have_baseline_finetuned_and_delta_per_task(pipeline_run):
    repo = pipeline_run.repo
    result = json.loads((repo / "metrics/eval/heating.json").read_text())
    # The domain's own questions first (domains/heating/questions.yaml), then val's three sides.
    assert list(result) == ["questions", "baseline", "finetuned", "delta"]
    asked = yaml.safe_load((repo / "domains/heating/questions.yaml").read_text())["questions"]
    assert result["questions"]["n"] == len(asked)
    val_tasks = {
        json.loads(line)["task"] for line in (repo / "data/processed/heating/val.jsonl").read_text().splitlines()
    }
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


def test_editing_a_generate_template_reruns_generate_onwards_only(repo):
    tasks = repo / "domains/heating/tasks.yaml"
    original = tasks.read_text()
    edited = original.replace('"Tell me the {what} for the {subject}."', '"Give me the {what} for the {subject}."')
    assert edited != original
    tasks.write_text(edited)
    out = sh(["dvc", "repro"], repo).stdout
    assert ran_stages(out) == STAGES_AFTER_EXTRACT, out
