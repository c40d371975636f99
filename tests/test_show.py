"""`finetune show examples`: examples printed readably per task for eyeballing, on stdout."""

from __future__ import annotations

from pathlib import Path

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


def quality_domain(root, monkeypatch):
    """A domain `boards` laid out as the pipeline leaves it: blocks, examples, task file, params."""
    from finetune.layout import domain_files
    from tests.conftest import repo_params, write_params

    monkeypatch.chdir(root)
    files = domain_files("boards")
    blocks = [
        {"id": f"b{i}", "source": f"raw/{i}.md#h=Setup", "kind": "section", "title": "Setup", "text": text}
        for i, text in enumerate(["Connect the board as follows:", "Wire it like this:", "Power it from USB."])
    ]
    examples = [chat("QA", i, f"[QA] How is board {i} set up?", b["text"]) for i, b in enumerate(blocks)]
    write_jsonl(files["blocks"], blocks)
    write_jsonl(files["examples"], examples)
    Path(files["tasks"]).parent.mkdir(parents=True)
    tasks = "tasks:\n  QA: {prefix: '[QA]', builder: refusal, questions: [x], check: nonempty}\n"
    Path(files["tasks"]).write_text(tasks)
    write_params(Path(files["params"]), {})
    write_params(root / "params.yaml", repo_params())


def test_show_lists_every_example_with_a_quality_problem_worst_first(tmp_path, monkeypatch):
    quality_domain(tmp_path, monkeypatch)
    result = invoke(cli, ["examples", "--domain", "boards", "--problem", "dangling_lead_in"])
    assert_ok(result)
    out = result.stdout
    assert out.startswith("== dangling_lead_in: 2 of 3 examples (checked 3) ==")
    # The longer answer dangles more: it comes first.
    assert out.index("A: Connect the board as follows:") < out.index("A: Wire it like this:")
    assert "Power it from USB." not in out


def test_an_unknown_problem_is_one_line_naming_the_known_ones(tmp_path, monkeypatch):
    from finetune.generation.quality import PROBLEMS

    quality_domain(tmp_path, monkeypatch)
    result = invoke(cli, ["examples", "--domain", "boards", "--problem", "dangling"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "unknown problem 'dangling' (did you mean dangling_lead_in?" in line
    assert all(p in line for p in PROBLEMS)


def test_a_problem_needs_a_domain(tmp_path):
    result = show(tmp_path, "--problem", "ambiguous")
    assert result.exit_code == 2 and "--problem needs --domain" in result.output
