"""The task file (tasks.yaml) loads whole or stops with one line naming the file, the line and the key; the named
format checks accept well-formed answers and reject malformed ones."""

from __future__ import annotations

import json

import pytest

from finetune.generation.checks import passes
from finetune.generation.taskfile import enabled, load
from finetune.io import InputError
from tests.conftest import HEATING_TASKS

GOOD = """\
tasks:
  SPEC:
    prefix: "[SPEC]"
    builder: table
    blocks: {kind: table, columns: [Parameter, Value]}
    questions: ["What is the {what}?"]
    check: value_with_unit
"""


def write(tmp_path, text: str):
    path = tmp_path / "tasks.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path, text: str) -> str:
    with pytest.raises(InputError) as e:
        load(write(tmp_path, text))
    return str(e.value)


def test_a_valid_task_file_loads_with_its_check_and_kinds(tmp_path):
    spec = load(write(tmp_path, GOOD)).tasks["SPEC"]
    assert spec.check.name == "value_with_unit" and spec.blocks.kind == ["table"]


def test_an_unknown_check_names_file_line_key_and_the_nearest_check(tmp_path):
    message = error(tmp_path, GOOD.replace("check: value_with_unit", "check: {name: value_with_unitt}"))
    assert message == (
        f"{tmp_path / 'tasks.yaml'}:7: tasks.SPEC.check.name: unknown check 'value_with_unitt' "
        "(did you mean value_with_unit?)"
    )


def test_a_misspelt_key_is_named_with_its_line_and_a_suggestion(tmp_path):
    message = error(tmp_path, GOOD.replace("questions:", "questons:"))
    assert message.startswith(f"{tmp_path / 'tasks.yaml'}:6: tasks.SPEC.questons: not a key here")
    assert "did you mean questions?" in message


def test_a_bad_check_argument_is_named(tmp_path):
    message = error(tmp_path, GOOD.replace("check: value_with_unit", "check: {name: regex, pattern: '(unclosed'}"))
    assert ":7: tasks.SPEC.check.pattern: not a valid regular expression" in message


def test_a_bad_heading_pattern_is_named(tmp_path):
    message = error(tmp_path, GOOD.replace("columns: [Parameter, Value]", "heading: '[a-'"))
    assert ":5: tasks.SPEC.blocks.heading: not a valid regular expression" in message


def test_an_unknown_block_kind_is_named_with_the_nearest_kind(tmp_path):
    message = error(tmp_path, GOOD.replace("kind: table", "kind: tabel"))
    assert message.endswith(":5: tasks.SPEC.blocks.kind: unknown block kind 'tabel' (did you mean table?)")


def test_an_unknown_builder_is_named(tmp_path):
    message = error(tmp_path, GOOD.replace("builder: table", "builder: tabel"))
    assert ":4: tasks.SPEC.builder:" in message and "'section'" in message and "tabel" in message


def test_a_block_builder_without_blocks_and_a_row_without_answer_are_errors(tmp_path):
    no_blocks = GOOD.replace("    blocks: {kind: table, columns: [Parameter, Value]}\n", "")
    assert "tasks.SPEC.blocks: the table builder needs" in error(tmp_path, no_blocks)
    row = GOOD.replace("builder: table", "builder: row")
    assert "tasks.SPEC.answer: the row builder needs an answer template" in error(tmp_path, row)


def test_broken_yaml_names_its_line(tmp_path):
    message = error(tmp_path, GOOD.replace('prefix: "[SPEC]"', 'prefix: "[SPEC]\n    oops: ['))
    assert message.startswith(f"{tmp_path / 'tasks.yaml'}:") and "not valid YAML" in message


def test_a_missing_task_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(InputError, match="task file not found .* --tasks"):
        load(tmp_path / "nope.yaml")


def test_json_schema_checks_validate_their_schema_when_loading(tmp_path):
    bad = GOOD.replace("check: value_with_unit", "check: {name: json_schema, schema: {type: 12}}")
    assert "tasks.SPEC.check.schema: not a valid JSON schema" in error(tmp_path, bad)


def test_enabled_returns_the_listed_tasks_and_names_params_and_task_file_for_a_missing_one(tmp_path):
    taskfile = load(write(tmp_path, GOOD))
    assert list(enabled(taskfile, ["SPEC"])) == ["SPEC"]
    with pytest.raises(InputError) as e:
        enabled(taskfile, ["SPEC", "SPECS"], "params.yaml")
    assert (
        str(e.value) == f"params.yaml: generate.tasks lists SPECS, not a task of {taskfile.path} (did you mean SPEC?)"
    )


CHECK_CASES = [
    # (check, arguments, meta, reference, well-formed answers, malformed answers)
    ("nonempty", {}, {}, "", ["Ja, mit dem AQ-300."], ["", "  \n"]),
    (
        "numbered_steps",
        {},
        {},
        "",
        ["1. Isolate the supply.\n2. Clean the burner.", "1. A\n\n2. B\n3. C\n"],
        ["1. Isolate the supply.", "- Isolate the supply.\n- Clean the burner.", "1. A\n3. B"],
    ),
    ("value_with_unit", {}, {"unit": "kW"}, "", ["24 kW", "Rated output: 24 KW"], ["24 kg", "twenty-four kW", ""]),
    (
        "exact",
        {},
        {},
        "I can only help with XB boards.",
        ["I can only help with XB boards.", "  i can only HELP with xb boards. "],
        ["Canberra.", "I can only help with XB boards. But Canberra."],
    ),
    ("exact", {"text": "n/a"}, {}, "ignored", ["N/A"], ["ignored"]),
    ("regex", {"pattern": r"^\w+-\d+$"}, {}, "", ["XB-200"], ["XB 200", "the XB-200"]),
    ("regex", {"pattern": "cause", "ignore_case": True}, {}, "", ["Cause: leak"], ["leak"]),
    ("regex", {"pattern": r"\d+", "full": True}, {}, "", ["42"], ["42 V"]),
    (
        "min_words",
        {"words": 4, "ends_with": [".", "?"]},
        {},
        "",
        ["It cools the flue gas.", "Does it cool the gas?"],
        ["It cools.", "It cools the flue gas and"],
    ),
    ("one_of", {"options": ["input", "output"]}, {}, "", ["Output", " input "], ["in", "input/output"]),
    (
        "json_schema",
        {"schema": {"type": "object", "required": ["q"]}},
        {},
        "",
        ['{"q": "tool add"}'],
        ['{"x": 1}', "not json", "[1]"],
    ),
]


@pytest.mark.parametrize(("name", "args", "meta", "reference", "good", "bad"), CHECK_CASES)
def test_named_check_accepts_well_formed_and_rejects_malformed_answers(
    tmp_path, name, args, meta, reference, good, bad
):
    check = "check: " + json.dumps({"name": name, **args})  # JSON is YAML
    spec = load(write(tmp_path, GOOD.replace("check: value_with_unit", check))).tasks["SPEC"].check
    assert [a for a in good if not passes(spec.name, spec.args, a, reference, meta)] == []
    assert [a for a in bad if passes(spec.name, spec.args, a, reference, meta)] == []


def test_the_repository_task_file_checks_accept_the_sample_answer_shapes():
    tasks = load(HEATING_TASKS).tasks
    cases = {
        "TERMINOLOGY": (
            ["Brenntal Calora CA-20C combi boiler (CA-20C, 20 kW)"],
            ["Brenntal Calora CA-20C (CA-24C, 20 kW)"],
        ),
        "WIRING": (["- Terminal X4 pins 1-2: room thermostat."], ["Terminal X4 pins 1-2: room thermostat."]),
        "TROUBLESHOOTING": (["Cause: Leak\nRemedy: Top up to 1.5 bar"], ["Top up to 1.5 bar", "Cause: Leak"]),
        "EXPLANATION": (["A condensing boiler cools its flue gas below the dew point."], ["It condenses."]),
    }
    for name, (good, bad) in cases.items():
        c = tasks[name].check
        assert [a for a in good if not passes(c.name, c.args, a, "", {})] == [], name
        assert [a for a in bad if passes(c.name, c.args, a, "", {})] == [], name


@pytest.mark.parametrize("stage", ["generate", "baseline", "evaluate"])
def test_every_stage_that_reads_the_task_file_takes_tasks_and_stops_on_a_bad_one_before_any_work(tmp_path, stage):
    import importlib

    from tests.conftest import invoke, params_file

    cli = importlib.import_module(f"stages.{stage}").cli
    bad = write(tmp_path, GOOD.replace("check: value_with_unit", "check: {name: unitt}"))
    # Its other paths: none of them exists, so reading any before the task file would fail otherwise.
    paths = {
        "generate": ["--input", "--output", "--metrics"],
        "baseline": ["--val", "--predictions", "--scores", "--timing"],
        "evaluate": ["--adapter", "--val", "--baseline-predictions", "--baseline-scores", "--predictions"]
        + ["--metrics", "--report", "--plot"],
    }[stage]
    missing = [a for option in paths for a in (option, tmp_path / "none" / option.strip("-"))]
    result = invoke(cli, [*missing, "--tasks", bad, "--params", params_file(tmp_path / "params.yaml")])
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f"{bad}:7: tasks.SPEC.check.name: unknown check 'unitt'")
