"""`finetune chat`: questions in, the fine-tuned model's answers out, asked exactly as evaluate asks (system prompt,
task prefix, greedy, eval.max_new_tokens); at a terminal as a person types, or as a filter over stdin."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from finetune.commands.chat import beside, cli
from tests.conftest import HEATING_TASKS, REPO, assert_ok, invoke, params_file, repo_params
from tests.serving import FaultServer

SYSTEM = repo_params()["generate"]["system_prompt"]


def two_line_answer(prompt: str) -> str:
    return f"1. First step for {prompt}\n2. Second step"


@pytest.fixture
def server():
    with FaultServer(answer=two_line_answer) as s:
        yield s


@pytest.fixture
def params(tmp_path):
    return params_file(tmp_path / "params.yaml", {"eval": {"max_new_tokens": 40, "max_retries": 0}})


def chat(args, stdin: str):
    from click.testing import CliRunner

    # A fixed width: the side-by-side columns wrap to the terminal, which differs between a shell and a test worker.
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin, catch_exceptions=True, env={"COLUMNS": "100"})


def test_each_stdin_line_is_asked_like_evaluate_asks_and_answered_with_line_breaks_kept(server, params):
    result = chat(
        ["--endpoint", server.url, "--model", "tuned", "--task", "SPEC", "--tasks", HEATING_TASKS, "--params", params],
        "CA-24C rated output?\n\nAQ-200 volume?\n",
    )
    assert_ok(result)
    assert result.stdout == (
        f"{two_line_answer('[SPEC] CA-24C rated output?')}\n\n{two_line_answer('[SPEC] AQ-200 volume?')}\n\n"
    )
    assert len(server.bodies) == 2  # the blank line is no question
    body = server.bodies[0]
    assert body["model"] == "tuned"
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "[SPEC] CA-24C rated output?"},
    ]
    assert body["temperature"] == 0 and body["max_tokens"] == 40


def test_compare_asks_the_base_model_too_and_prints_its_answer_beside(server, params):
    args = ["--endpoint", server.url, "--model", "tuned", "--compare", "--base-name", "base", "--params", params]
    result = chat(args, "Why does the pump overrun?\n")
    assert_ok(result)
    assert sorted(b["model"] for b in server.bodies) == ["base", "tuned"]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["base", "│", "fine-tuned"]
    assert lines[2].startswith("1. First step for Why does the pump overrun?"[:20])
    assert "│" in lines[2] and lines[3].split("│")[0].strip().startswith("2. Second step")

    as_json = chat([*args, "--json"], "Why does the pump overrun?\n")
    assert_ok(as_json)
    record = json.loads(as_json.stdout)
    expected = two_line_answer("Why does the pump overrun?")
    assert record == {"question": "Why does the pump overrun?", "answer": expected, "base_answer": expected}


def test_side_by_side_columns_wrap_long_lines_and_keep_line_breaks():
    text = beside({"base": "short", "fine-tuned": "a " * 30 + "\nsecond line"}, width=60)
    rows = text.splitlines()
    assert all(len(r) <= 60 for r in rows)
    right = [r.split("│")[1].strip() for r in rows[2:] if "│" in r]
    assert right[-1] == "second line" and len(right) >= 3  # the long line wrapped, the break kept


@pytest.mark.parametrize(
    "args, message",
    [
        (["--endpoint", "http://127.0.0.1:9/v1"], "--endpoint needs --model NAME"),
        (["--endpoint", "http://127.0.0.1:9/v1", "--model", "t", "--compare"], "needs --base-name NAME"),
        (["--task", "NOPE", "--tasks", HEATING_TASKS], "'NOPE' is not a task of "),
    ],
)
def test_bad_options_are_one_line_errors(args, message, params):
    result = invoke(cli, [*args, "--params", params])
    assert result.exit_code == 2 and message in result.output


def test_a_person_at_a_terminal_types_questions_and_ends_with_ctrl_d(server, params):
    """Driven through a pseudo-terminal, as a person would: prompt, question, answer, next prompt, Ctrl-D."""
    main, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    cmd = [sys.executable, "-m", "finetune.cli", "chat", "--endpoint", server.url, "--model", "tuned"]
    proc = subprocess.Popen(
        [*cmd, "--params", str(params)], stdin=child, stdout=child, stderr=child, env=env, close_fds=True
    )
    os.close(child)
    try:
        screen = read_until(main, "you> ")
        assert "One question per line" in screen
        os.write(main, b"How do I bleed the radiators?\r")
        screen = read_until(main, "you> ")
        assert "1. First step for How do I bleed the radiators?\r\n2. Second step" in screen
        os.write(main, b"\x04")  # Ctrl-D at an empty prompt
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    assert [b["messages"][-1]["content"] for b in server.bodies] == ["How do I bleed the radiators?"]


def read_until(fd: int, marker: str, timeout: float = 60) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} on the terminal after {timeout} s; it shows:\n{seen}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096).decode(errors="replace")
            except OSError:  # the child closed the terminal
                raise AssertionError(f"the terminal closed before {marker!r}; it shows:\n{seen}") from None
    return seen


@pytest.mark.slow
def test_a_local_adapter_answers_as_evaluate_would_and_compare_gives_the_base_answer(trained, monkeypatch):
    """The same prompt, template, decoding and generation code as the evaluate and baseline stages."""
    import torch

    import finetune.evaluation.inference
    from finetune.chat import prompt_messages
    from finetune.evaluation.predict import predict
    from finetune.generation.taskfile import load
    from finetune.params import load_params
    from finetune.training.models import load_base, load_merged, load_tokenizer

    example = next(e for e in trained.val if e["task"] == "SPEC")
    question = example["messages"][1]["content"].removeprefix("[SPEC] ")
    p = load_params(trained.params_file)
    one = p.eval.model_copy(update={"batch_size": 1})
    merged, base_model = load_merged(trained.base, trained.adapter, p.model), load_base(trained.base, p.model)
    tasks = load(HEATING_TASKS)
    tuned = predict(merged, load_tokenizer(trained.adapter), [example], one, p.generate.refusal, "t", tasks)[0][0]
    base = predict(base_model, load_tokenizer(trained.base), [example], one, "", "b", tasks)[0][0]

    calls = []
    real = finetune.evaluation.inference.generate

    def spy(model, tokenizer, prompts, batch_size, max_new_tokens, desc, progress=True):
        calls.append((model, prompts, max_new_tokens))
        return real(model, tokenizer, prompts, batch_size, max_new_tokens, desc, progress)

    monkeypatch.setattr(finetune.evaluation.inference, "generate", spy)
    args = ["--model", trained.base, "--adapter", trained.adapter, "--params", trained.params_file]
    args += ["--tasks", HEATING_TASKS]
    result = invoke_with_input([*args, "--task", "SPEC", "--compare", "--json"], question + "\n")
    record = json.loads(result.stdout)
    assert record == {
        "question": f"[SPEC] {question}",
        "answer": tuned["prediction"],
        "base_answer": base["prediction"],
    }
    # Both models got evaluate's very prompt (system prompt, prefixed question) and answer length...
    assert [(c[1], c[2]) for c in calls] == [([prompt_messages(example)], p.eval.max_new_tokens)] * 2
    # ...and they are two models: the base, and the base with the adapter merged in.
    ids = load_tokenizer(trained.base)(example["messages"][1]["content"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = [c[0](ids).logits for c in calls]
        assert torch.allclose(logits[0], base_model(ids).logits)
        assert torch.allclose(logits[1], merged(ids).logits)
        assert not torch.allclose(logits[0], logits[1])


def invoke_with_input(args, stdin: str):
    result = chat(args, stdin)
    assert_ok(result)
    return result
