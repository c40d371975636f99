"""`finetune generate` and the task registry (stages/tasks.py): every task turns its blocks into chat examples with
the params' system prompt and task prefix, phrasings are chosen reproducibly, and each task's format check tells a
well-formed answer from a malformed one."""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from finetune.generation.examples import run
from stages.generate import cli
from finetune.io import InputError, load_jsonl, write_jsonl
from finetune.schema import example_problems
from finetune.generation.tasks import OUT_OF_DOMAIN, TASKS, title_parts
from tests.conftest import TINY_BLOCKS, assert_ok, invoke, repo_params, write_params
from finetune.params import Generate

# Prefixes and texts unlike the repo's, so a test can tell they come from params.
GPARAMS = {
    **repo_params()["generate"],
    "seed": 42,
    "prefixes": {name: f"<{name.lower()}>" for name in TASKS} | {"REFUSAL": "<qa>"},
    "system_prompt": "Test system prompt: answer briefly.",
    "refusal": "Sorry, only Brenntal products.",
    "phrasings_per_item": 1,
}
BLOCKS_BY_ID = {b["id"]: b for b in TINY_BLOCKS}


def gparams(**changes) -> dict:
    return copy.deepcopy(GPARAMS) | changes


def generate(tmp_path, blocks, generate_params):
    params = repo_params() | {"generate": generate_params}
    write_jsonl(tmp_path / "blocks.jsonl", blocks)
    args = ["--input", tmp_path / "blocks.jsonl", "--output", tmp_path / "examples.jsonl"]
    args += ["--metrics", tmp_path / "generate.json", "--params", write_params(tmp_path / "params.yaml", params)]
    return invoke(cli, args)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    assert_ok(generate(root, TINY_BLOCKS, gparams()))
    return load_jsonl(root / "examples.jsonl"), json.loads((root / "generate.json").read_text())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_yields_system_user_assistant_examples_with_its_prefix(generated, task):
    examples = [e for e in generated[0] if e["task"] == task]
    assert examples, f"no {task} examples from the tiny corpus"
    for e in examples:
        assert {"id", "task", "source", "block_id", "messages", "meta"} <= set(e)
        assert example_problems(e) == []
        system, user, assistant = e["messages"]
        assert [system["role"], user["role"], assistant["role"]] == ["system", "user", "assistant"]
        assert system["content"] == GPARAMS["system_prompt"]
        assert user["content"].startswith(GPARAMS["prefixes"][task] + " ")
        assert assistant["content"].strip()
        if task != "REFUSAL":
            block = BLOCKS_BY_ID[e["block_id"]]
            assert e["source"] == block["source"] and block["kind"] in TASKS[task].kinds


def test_metrics_count_the_examples_of_each_task(generated):
    examples, metrics = generated
    assert metrics == {
        "examples": len(examples),
        "per_task": dict(sorted(Counter(e["task"] for e in examples).items())),
    }


def test_example_ids_are_unique(generated):
    ids = [e["id"] for e in generated[0]]
    assert len(ids) == len(set(ids))


def test_every_generated_answer_passes_its_own_task_format_check(generated):
    for e in generated[0]:
        meta = {**e["meta"], "refusal": GPARAMS["refusal"]}
        assert TASKS[e["task"]].check(e["messages"][-1]["content"], meta), e


def test_phrasings_are_the_same_for_the_same_seed():
    assert run(TINY_BLOCKS, Generate.model_validate(gparams(seed=7))) == run(
        TINY_BLOCKS, Generate.model_validate(gparams(seed=7))
    )


def test_phrasings_differ_across_seeds_for_some_fact_but_the_answers_do_not():
    a, b = (
        run(TINY_BLOCKS, Generate.model_validate(gparams(seed=1))),
        run(TINY_BLOCKS, Generate.model_validate(gparams(seed=2))),
    )
    assert [e["messages"][1]["content"] for e in a] != [e["messages"][1]["content"] for e in b]
    assert [(e["block_id"], e["messages"][2]["content"]) for e in a] == [
        (e["block_id"], e["messages"][2]["content"]) for e in b
    ]


def test_adding_a_block_does_not_change_the_phrasing_of_another():
    without = run(TINY_BLOCKS[1:], Generate.model_validate(gparams()))
    with_it = run(TINY_BLOCKS, Generate.model_validate(gparams()))
    assert [e for e in with_it if e["block_id"] != TINY_BLOCKS[0]["id"]] == without


def test_phrasings_per_item_gives_that_many_different_questions_per_fact_at_most_one_per_phrasing():
    examples = run(TINY_BLOCKS, Generate.model_validate(gparams(phrasings_per_item=3)))
    per_fact = Counter((e["task"], e["block_id"], e["messages"][2]["content"]) for e in examples)
    spec = [n for (task, _, _), n in per_fact.items() if task == "SPEC"]
    assert spec and set(spec) == {3}
    wiring = [n for (task, _, _), n in per_fact.items() if task == "WIRING"]
    assert wiring == [len(TASKS["WIRING"].phrasings)] == [2]  # only two wiring phrasings exist
    prompts = [e["messages"][1]["content"] for e in examples]
    assert len(prompts) == len(set(prompts))


def test_refusal_examples_answer_with_generate_refusal(generated):
    refusals = [e for e in generated[0] if e["task"] == "REFUSAL"]
    assert {e["messages"][2]["content"] for e in refusals} == {GPARAMS["refusal"]}
    assert sorted(e["messages"][1]["content"] for e in refusals) == sorted(f"<qa> {q}" for q in OUT_OF_DOMAIN)


def test_terminology_answer_is_name_code_rating_unit_for_every_informal_name(generated):
    terms = [e for e in generated[0] if e["task"] == "TERMINOLOGY" and e["block_id"] == TINY_BLOCKS[0]["id"]]
    assert {e["messages"][2]["content"] for e in terms} == {"Brenntal Calora CA-20C combi boiler (CA-20C, 20 kW)"}
    prompts = [e["messages"][1]["content"] for e in terms]
    assert len(prompts) == 4  # one per informal name
    for name in ("calora combi 20", "Brenntal Kombitherme 20 kW", "20kW Brenntal gas combi", "ca20c boiler"):
        assert [p for p in prompts if name in p], name


def test_spec_answer_is_value_and_unit_and_the_question_names_parameter_and_product(generated):
    spec = {e["messages"][2]["content"]: e["messages"][1]["content"] for e in generated[0] if e["task"] == "SPEC"}
    assert set(spec) == {"24 kW", "32 kg", "20 mbar", "200 l", "10 bar"}
    assert "rated output" in spec["24 kW"] and "CA-24C" in spec["24 kW"]
    assert "maximum operating pressure" in spec["10 bar"] and "AQ-200" in spec["10 bar"]


def test_troubleshooting_answer_gives_cause_and_remedy(generated):
    answers = {e["messages"][2]["content"] for e in generated[0] if e["task"] == "TROUBLESHOOTING"}
    assert answers == {
        "Cause: Leak or air in the system\nRemedy: Top up to 1.5 bar and bleed",
        "Cause: Gas supply closed\nRemedy: Open the gas valve and reset",
    }


def test_a_document_preface_yields_no_explanation(generated):
    preface = next(b for b in TINY_BLOCKS if b["title"] == "Brenntal Service Manual — Heating")
    assert not [e for e in generated[0] if e["block_id"] == preface["id"]]


def test_an_unknown_task_in_params_is_an_error_naming_params_yaml(tmp_path):
    result = generate(tmp_path, TINY_BLOCKS, gparams(tasks=["SPEC", "SUMMARY"]))
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith("params.yaml")
    assert "SUMMARY" in str(result.exception) and "generate.tasks" in str(result.exception)
    assert not (tmp_path / "examples.jsonl").exists()


def test_a_task_with_no_blocks_to_build_from_is_an_error(tmp_path):
    blocks = [b for b in TINY_BLOCKS if b["kind"] != "wiring"]
    result = generate(tmp_path, blocks, gparams())
    assert isinstance(result.exception, InputError)
    assert "WIRING" in str(result.exception) and str(tmp_path / "blocks.jsonl") in str(result.exception)
    assert not (tmp_path / "examples.jsonl").exists()


def test_only_the_tasks_in_params_are_generated():
    assert {e["task"] for e in run(TINY_BLOCKS, Generate.model_validate(gparams(tasks=["SPEC", "REFUSAL"])))} == {
        "SPEC",
        "REFUSAL",
    }


@pytest.mark.parametrize(
    ("title", "family", "topic"),
    [
        (
            "Brenntal Service Manual — Heating / Calora gas condensing boilers / Specifications — CA-24C",
            "Calora",
            "CA-24C",
        ),
        (
            "Brenntal Service Manual — Heating / Calora gas condensing boilers / Procedure — Annual service",
            "Calora",
            "Annual service",
        ),
        ("Aquis / Specifications / AQ-200", "Aquis", "AQ-200"),  # a PDF page: no dash in the heading
        ("Aquis / Procedure / Inspecting the magnesium anode", "Aquis", "Inspecting the magnesium anode"),
        ("Brenntal Service Manual — Heating", "", "Brenntal Service Manual — Heating"),  # a preface has no family
    ],
)
def test_title_parts_finds_family_and_topic_in_markdown_and_pdf_heading_paths(title, family, topic):
    assert title_parts(title) == (family, topic)


REFUSAL = "I can only help with Brenntal heating and ventilation products."
FORMAT_CASES = {
    # task: (meta, well-formed answers, malformed answers)
    "TERMINOLOGY": (
        {},
        ["Brenntal Calora CA-20C combi boiler (CA-20C, 20 kW)", "Brenntal Aquis AQ-200 cylinder (AQ-200, 200 l)"],
        ["calora combi 20", "Brenntal Calora CA-20C combi boiler (CA-24C, 20 kW)", "Calora CA-20C (CA-20C, 20 kW)"],
    ),
    "SPEC": ({"unit": "kW"}, ["24 kW", "Rated output: 24 KW"], ["24 kg", "twenty-four kW", ""]),
    "PROCEDURE": (
        {},
        ["1. Isolate the supply.\n2. Clean the burner.", "1. A\n\n2. B\n3. C\n"],
        ["1. Isolate the supply.", "- Isolate the supply.\n- Clean the burner.", "1. A\n3. B"],
    ),
    "EXPLANATION": (
        {},
        ["A condensing boiler cools its flue gas below the dew point."],
        ["It condenses.", "A condensing boiler cools its flue gas below the dew point and"],
    ),
    "WIRING": ({}, ["- Terminal X4 pins 1-2: room thermostat."], ["Terminal X4 pins 1-2: room thermostat.", ""]),
    "TROUBLESHOOTING": ({}, ["Cause: Leak\nRemedy: Top up to 1.5 bar"], ["Top up to 1.5 bar", "Cause: Leak"]),
    "QA": ({}, ["Ja, mit dem AQ-300."], ["", "  \n"]),
    "REFUSAL": ({"refusal": REFUSAL}, [REFUSAL, f"  {REFUSAL.upper()} "], ["Canberra.", f"{REFUSAL} But Canberra."]),
}


def test_every_task_in_the_registry_has_format_cases():
    assert set(FORMAT_CASES) == set(TASKS)


@pytest.mark.parametrize("task", sorted(FORMAT_CASES))
def test_task_format_check_accepts_well_formed_and_rejects_malformed_answers(task):
    meta, good, bad = FORMAT_CASES[task]
    check = TASKS[task].check
    assert [a for a in good if not check(a, meta)] == []
    assert [a for a in bad if check(a, meta)] == []
