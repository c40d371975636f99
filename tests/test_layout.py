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
    assert files["examples"] in for_domain("generate", "heating").split("--output ")[1].split()[0]


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


def option_defaults():
    """(command, option, default path) for every option of every `finetune` command whose default is a path."""
    import importlib

    import click

    from finetune.cli import COMMANDS

    def walk(command, name):
        if isinstance(command, click.Group):
            for sub, c in command.commands.items():
                yield from walk(c, f"{name} {sub}")
            return
        for p in command.params:
            if isinstance(p, click.Option) and not p.is_flag:
                for default in p.default if isinstance(p.default, (list, tuple)) else [p.default]:
                    if isinstance(default, str) and ("/" in default or "." in default):
                        yield name, p.opts[0], default

    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        yield from walk(getattr(importlib.import_module(module), attr), name)


def test_no_command_defaults_to_a_path_the_domain_layout_lacks():
    """A default is a path dvc.yaml passes as it is to every domain (models/base, params.yaml, compare's folders) or
    a local folder .gitignore names (a cache, a merged model): never one domain's file of the single-domain layout
    (data/raw, models/adapter, tasks.yaml), which would read or overwrite something no stage makes."""
    commands = " ".join(body.get("do", body)["cmd"] for body in DVC.values()).split()
    ignored = {line.strip("/") for line in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()}
    defaults = list(option_defaults())
    assert ("evaluate", "--cache", "data/eval/endpoint_cache") in defaults  # the walk finds paths
    stale = [(c, o, d) for c, o, d in defaults if d not in commands and d.strip("/") not in ignored]
    assert not stale, stale


def test_a_command_run_by_hand_without_its_paths_asks_for_them_or_a_domain(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from finetune.cli import group

    monkeypatch.chdir(tmp_path)  # nothing there: no command may find a file by a default
    params = ["--params", str(REPO / "params.yaml")]
    for args, said in [
        (["evaluate", *params], "missing --val, --baseline-predictions"),
        (["chat", *params], "give --domain NAME (or --adapter PATH)"),
        (["export", *params], "missing --adapter PATH"),
        (["show", "examples"], "give --domain NAME or --input PATH"),
        (["extract", *params], "Missing option '--input'"),
    ]:
        result = CliRunner().invoke(group, args)
        assert result.exit_code == 2 and said in result.output, (args, result.output)


def test_show_examples_of_a_domain_reads_what_generate_wrote_for_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from finetune.cli import group
    from finetune.io import write_jsonl

    monkeypatch.chdir(tmp_path)
    messages = [{"role": "user", "content": "Which pump?"}, {"role": "assistant", "content": "The P-20."}]
    example = {"task": "SPEC", "source": "a.md", "messages": messages}
    write_jsonl(tmp_path / domain_files("boards")["examples"], [example])
    result = CliRunner().invoke(group, ["show", "examples", "--domain", "boards"])
    assert result.exit_code == 0 and "== SPEC: 1 of 1 ==" in result.output and "The P-20." in result.output


def test_dvc_yaml_passes_every_required_option_of_each_stage():
    import importlib

    import click

    from finetune.cli import COMMANDS

    checked = 0
    for name, body in DVC.items():
        cmd = body.get("do", body)["cmd"].split()
        module, attr = COMMANDS[cmd[1]].split(":")
        command = getattr(importlib.import_module(module), attr)
        required = [p.opts[0] for p in command.params if isinstance(p, click.Option) and p.required]
        assert not [o for o in required if o not in cmd], (name, [o for o in required if o not in cmd])
        checked += len(required)
    assert checked > 30  # extract's 4, train's 6, report's 12, …
