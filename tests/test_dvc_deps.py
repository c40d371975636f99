"""dvc.yaml lists, for every stage, exactly the code and the params keys that stage reads: both are derived from the
source (tests/codedeps.py) and compared, so a forgotten import or a stale entry fails here, naming the stage."""

from __future__ import annotations

import ast

import pytest
import yaml

from finetune.cli import COMMANDS
from tests.codedeps import REPO, closure, module_file, params_reads, reachable, rel

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
STAGES = sorted(DVC["stages"])


def stage_module(stage: str):
    command = DVC["stages"][stage]["cmd"].split()[1]  # `finetune <command> …`
    return module_file(COMMANDS[command].split(":")[0])


def covers(declared: str, read: str) -> bool:
    return read == declared or read.startswith(declared + ".")


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_lists_every_project_module_it_imports_and_no_other(stage):
    derived = rel(closure(stage_module(stage)))
    declared = {d for d in DVC["stages"][stage]["deps"] if d.endswith(".py")}
    assert not derived - declared, f"dvc.yaml stage {stage}: deps lack {sorted(derived - declared)}"
    assert not declared - derived, f"dvc.yaml stage {stage}: deps list {sorted(declared - derived)}, never imported"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_lists_every_params_key_its_code_reads_and_no_other(stage):
    reads = params_reads(reachable(stage_module(stage)))
    declared = DVC["stages"][stage].get("params", [])
    missing = sorted(r for r in reads if not any(covers(d, r) for d in declared))
    stale = sorted(d for d in declared if not any(covers(d, r) for r in reads))
    assert not missing, f"dvc.yaml stage {stage}: params lack {missing}"
    assert not stale, f"dvc.yaml stage {stage}: params list {stale}, which its code never reads"


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
