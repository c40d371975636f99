"""dvc.yaml lists, for every stage, exactly the code and the params keys that stage reads: both are derived from the
source (tests/codedeps.py) and compared, so a forgotten import or a stale entry fails here, naming the stage.

A per-domain stage (`foreach: ${domains}`) lists the repository's params.yaml by key and its domain's
domains/${key}/params.yaml by section: exactly the sections it reads that a domain may override."""

from __future__ import annotations

import ast

import pytest
import yaml

from finetune.cli import COMMANDS
from finetune.params import SHARED
from tests.codedeps import REPO, closure, module_file, params_reads, reachable, rel

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
STAGES = sorted(DVC["stages"])


DOMAIN_PARAMS = "domains/${key}/params.yaml"


def definition(stage: str) -> dict:
    """The stage's body: itself, or its `do:` when it runs once per domain."""
    return DVC["stages"][stage].get("do", DVC["stages"][stage])


def stage_module(stage: str):
    command = definition(stage)["cmd"].split()[1]  # `finetune <command> …`
    return module_file(COMMANDS[command].split(":")[0])


def declared_params(stage: str) -> tuple[list[str], list[str] | None]:
    """(keys of params.yaml, sections of the domain's params.yaml or None where the stage names no domain file)."""
    keys, sections = [], None
    for entry in definition(stage).get("params", []):
        if isinstance(entry, dict):
            assert list(entry) == [DOMAIN_PARAMS], f"dvc.yaml stage {stage}: unexpected params file {list(entry)}"
            sections = entry[DOMAIN_PARAMS]
        else:
            keys.append(entry)
    return keys, sections


def covers(declared: str, read: str) -> bool:
    return read == declared or read.startswith(declared + ".")


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_lists_every_project_module_it_imports_and_no_other(stage):
    derived = rel(closure(stage_module(stage)))
    declared = {d for d in definition(stage).get("deps", []) if d.endswith(".py")}
    assert not derived - declared, f"dvc.yaml stage {stage}: deps lack {sorted(derived - declared)}"
    assert not declared - derived, f"dvc.yaml stage {stage}: deps list {sorted(declared - derived)}, never imported"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_lists_every_params_key_its_code_reads_and_no_other(stage):
    reads = params_reads(reachable(stage_module(stage)))
    declared, _ = declared_params(stage)
    missing = sorted(r for r in reads if not any(covers(d, r) for d in declared))
    stale = sorted(d for d in declared if not any(covers(d, r) for r in reads))
    assert not missing, f"dvc.yaml stage {stage}: params lack {missing}"
    assert not stale, f"dvc.yaml stage {stage}: params list {stale}, which its code never reads"


@pytest.mark.parametrize("stage", STAGES)
def test_a_domain_stage_lists_each_section_of_its_domain_params_that_it_reads(stage):
    reads = params_reads(reachable(stage_module(stage)))
    _, sections = declared_params(stage)
    overridable = {r.split(".")[0] for r in reads} - set(SHARED)
    if "foreach" not in DVC["stages"][stage]:
        assert sections is None, f"dvc.yaml stage {stage} runs once, for no domain, but lists a domain's params"
        return
    assert sorted(sections or []) == sorted(overridable), f"dvc.yaml stage {stage}: domain params {sections}"


def test_every_domain_params_file_holds_every_section_dvc_yaml_names():
    # DVC stops `dvc repro` on a listed params key missing from its file: a domain that overrides nothing in a
    # section still lists it, empty.
    named = {s for stage in STAGES for s in (declared_params(stage)[1] or [])}
    for domain in yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["domains"]:
        own = yaml.safe_load((REPO / "domains" / domain / "params.yaml").read_text(encoding="utf-8"))
        assert named <= set(own), f"domains/{domain}/params.yaml lacks {sorted(named - set(own))}"


def test_no_stage_module_imports_another():
    stage_files = {p for p in (REPO / "stages").glob("*.py") if p.name != "__init__.py"}
    for path in stage_files:
        others = (closure(path) & stage_files) - {path}
        assert not others, f"{rel({path})} imports {sorted(rel(others))}: shared code belongs in finetune/"


def test_package_init_files_hold_only_a_docstring():
    # The deps leave __init__.py out; that is only sound while importing a package runs no code of ours.
    for init in [*(REPO / "finetune").rglob("__init__.py"), REPO / "stages" / "__init__.py"]:
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), init


def test_the_derivation_sees_reads_through_typed_sections_and_nested_sections():
    # A guard on the checker itself: if these stop being found, the two tests above would pass on anything.
    base = params_reads(reachable(stage_module("base")))
    assert {"model.name", "model.tiny.vocab_size", "model.max_seq_len"} <= base
    assert not any(r.startswith("quant") for r in base)  # base never loads the 4-bit model
    assert {"lora", "quant", "train", "model"} <= params_reads(reachable(stage_module("train")))
    assert "stages/extract.py" in rel(closure(stage_module("extract")))
    assert "finetune/documents/markup.py" in rel(closure(stage_module("extract")))
