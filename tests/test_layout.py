"""The paths `finetune chat --domain` and `finetune evaluate --domain` assume are the ones dvc.yaml gives the stages."""

from __future__ import annotations

import yaml

from finetune.layout import domain_files
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def for_domain(stage: str, domain: str) -> str:
    return DVC[stage]["do"]["cmd"].replace("${key}", domain)


def test_a_domains_files_are_where_dvc_yaml_writes_and_reads_them():
    files = domain_files("heating")
    evaluate = for_domain("evaluate", "heating")
    for key in ("adapter", "tasks", "params", "val", "baseline_predictions", "baseline_scores"):
        assert files[key] in evaluate, key


def test_a_served_models_evaluation_never_lands_on_the_evaluate_stages_outputs():
    files = domain_files("heating")
    outs = {
        next(iter(o)) if isinstance(o, dict) else o
        for stage in DVC.values()
        for o in stage.get("do", stage).get("outs", []) + stage.get("do", stage).get("metrics", [])
    }
    outs = {o.replace("${key}", "heating") for o in outs}
    served = {files[k] for k in ("served_predictions", "served_metrics", "served_report", "served_plot")}
    assert not served & outs


def test_dvc_lock_holds_the_stages_dvc_yaml_defines_and_no_other():
    """DVC never drops the entry of a stage that is gone from dvc.yaml (a renamed stage, a removed domain), and every
    `dvc repro`, no-op too, parses the whole lock file: a stale entry only costs time."""
    domains = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["domains"]
    defined = {f"{name}@{d}" if "foreach" in body else name for name, body in DVC.items() for d in domains}
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text(encoding="utf-8"))["stages"])
    assert locked == defined, f"stale: {sorted(locked - defined)}, never run: {sorted(defined - locked)}"


def declared_outputs() -> set[str]:
    """Every path dvc.yaml declares as a stage's out, metric or plot, with `foreach` expanded over params.yaml's
    domains."""
    domains = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["domains"]
    paths = set()
    for body in DVC.values():
        stage = body.get("do", body)
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            paths |= {path.replace("${key}", d) for d in domains} if "foreach" in body else {path}
    return paths


def test_every_committed_file_under_metrics_and_reports_is_an_output_dvc_yaml_declares():
    """A file no stage writes any more (a single-domain layout's metrics/baseline.json) would sit in git unchanged
    forever, looking like a result."""
    import subprocess

    committed = subprocess.run(
        ["git", "ls-files", "metrics", "reports"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    declared = declared_outputs()
    stale = [
        f
        for f in committed
        if not f.endswith(".gitignore") and not any(f == d or f.startswith(d.rstrip("/") + "/") for d in declared)
    ]
    assert committed and not stale, f"committed but no stage writes them: {stale}"
