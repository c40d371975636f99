"""`finetune show examples`: examples printed readably per task for eyeballing, on stdout."""

from __future__ import annotations

from finetune.cli import COMMANDS
from finetune.commands.show import cli
from finetune.generation.examples import example
from finetune.io import InputError, write_jsonl
from tests.conftest import assert_ok, invoke


def chat(task: str, i: int, *turns: str) -> dict:
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": "system", "content": "sys"}] + [{"role": r, "content": t} for r, t in zip(roles, turns)]
    return example(task, f"doc.md#part={i}", f"b{i}", messages, {})


EXAMPLES = [chat("SPEC", i, f"[SPEC] What is value {i}?", f"{i} V") for i in range(10)] + [
    chat("QA", 0, "[QA] How do I undo it?", "Run reset.", "[QA] And for all?", "1. Run reset.\n2. Check status.")
]


def show(tmp_path, *args):
    write_jsonl(tmp_path / "examples.jsonl", EXAMPLES)
    return invoke(cli, ["examples", "--input", tmp_path / "examples.jsonl", *args])


def test_show_is_a_finetune_command():
    assert COMMANDS["show"] == "finetune.commands.show:cli"


def test_every_task_gets_n_examples_spread_over_all_of_them(tmp_path):
    result = show(tmp_path, "-n", "3")
    assert_ok(result)
    out = result.stdout
    assert "== QA: 1 of 1 ==" in out and "== SPEC: 3 of 10 ==" in out
    assert out.index("== QA") < out.index("== SPEC")  # tasks in name order
    shown = [i for i in range(10) if f"Q: [SPEC] What is value {i}?" in out]
    assert shown == [0, 3, 6]  # spread, not the first three
    assert "  source: doc.md#part=3\n  Q: [SPEC] What is value 3?\n  A: 3 V" in out


def test_a_conversation_shows_its_history_and_a_multiline_answer_indented(tmp_path):
    out = show(tmp_path, "--task", "QA").stdout
    assert "  (user) [QA] How do I undo it?\n  (assistant) Run reset.\n  Q: [QA] And for all?" in out
    assert "  A: 1. Run reset.\n    2. Check status." in out
    assert "SPEC" not in out and "sys" not in out


def test_an_unknown_task_names_the_file_and_the_tasks_it_has(tmp_path):
    result = show(tmp_path, "--task", "SPECS")
    assert isinstance(result.exception, InputError)
    assert str(result.exception) == f"{tmp_path / 'examples.jsonl'}: no examples of task SPECS (tasks there: QA, SPEC)"
