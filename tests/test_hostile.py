"""The hostile corpus (tests/hostile.py) through every data stage, in both modes of extract.on_error: no traceback, each
bad file named once in one line and in the rejects, the rejects file written however extract ends, no control
character from a document or file name on the terminal, and every stage under 1 GiB."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from finetune.cli import main
from finetune.generation.builders import HISTORY_CHARS_PER_TOKEN, conversation
from finetune.io import log, printable
from tests.conftest import HEATING_TASKS, params_file
from tests.hostile import EXTRACT, SECRET, TURNS, build, long_chat, run_stage, stage_args

GIB = 1 << 30
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # anything but the newline


def shown(name: str) -> str:
    """A file name as every line prints it: a name that is not UTF-8 as its bytes, control characters escaped."""
    return printable("raw/" + os.fsencode(name).decode("utf-8", "backslashreplace"))


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, dict[str, str]]:
    kinds = build(tmp_path)
    return tmp_path, kinds


def params(root: Path, on_error: str) -> Path:
    tasks = {"tasks": ["SECTION", "QA", "REFUSAL"]}  # QA: the heating task file's imported conversations
    return params_file(root / "params.yaml", {"extract": {"on_error": on_error}, "generate": tasks})


def test_printable_escapes_what_a_terminal_would_act_on_and_keeps_the_rest():
    assert printable("a\x1b[31mb\nc\td\u202ee\x9b\udcff é") == "a\\x1b[31mb\\nc\\td\\u202ee\\x9b\\udcff é"


def test_log_prints_a_crafted_message_as_one_escaped_line(capsys):
    log("extract", "raw/fake\n[extract] all good\x1b]0;pwned\x07.md")
    assert capsys.readouterr().err == "[extract] raw/fake\\n[extract] all good\\x1b]0;pwned\\x07.md\n"


def test_a_10000_turn_conversation_gives_examples_linear_in_its_turns():
    block = {"messages": json.loads(long_chat())["messages"]}
    items = conversation(block, None, max_seq_len=384)
    assert len(items) == TURNS // 2
    qa = sum(len(m) for m in (items[-1].fields["question"], items[-1].answer))  # every turn is as long
    room = 384 * HISTORY_CHARS_PER_TOKEN - qa
    lengths = [sum(len(m["content"]) for m in item.history) for item in items]
    assert max(lengths) <= room and lengths[-1] > room - qa  # as many whole exchanges as fit, never more
    assert all(item.history[0]["role"] == "user" for item in items[1:])
    short = {"messages": block["messages"][:200]}  # without a bound, the whole history (what made 1.94 GB)
    assert [len(i.history) for i in conversation(short, None)] == list(range(0, 199, 2))


def test_skip_mode_keeps_the_harmless_files_and_lists_every_other_once_in_one_line(corpus):
    root, kinds = corpus
    rc, err, peak = run_stage([*EXTRACT, "--params", str(params(root, "skip"))], root)
    assert rc == 0, err
    assert "Traceback" not in err and not CONTROL.search(err), err
    assert peak < GIB
    rejects = json.loads((root / "out" / "rejects.json").read_text())
    listed = Counter(r["path"] for r in rejects)
    for name, kind in kinds.items():
        path = "raw/" + os.fsencode(name).decode("utf-8", "backslashreplace")
        assert listed[path] == (kind == "rejected"), (name, listed[path])
        said = [
            line
            for line in err.splitlines()
            if line.startswith(("[extract] skipped file", "[extract] skipped record")) and shown(name) in line
        ]
        assert len(said) == (kind == "rejected"), (name, said)
    assert len(listed) == sum(k == "rejected" for k in kinds.values())
    assert "[extract] raw/truncated.pdf: pypdf: EOF marker not found" in err.splitlines()  # a library's warning
    for out in (root / "out").iterdir():
        assert SECRET not in out.read_text(encoding="utf-8"), out


def test_fail_mode_stops_at_each_bad_file_with_one_line_and_lists_it_in_the_rejects(corpus, monkeypatch, capsys):
    """Each run stops at the first bad file; the test removes it and runs again, until only good files are left."""
    root, kinds = corpus
    monkeypatch.chdir(root)
    argv = [*EXTRACT, "--params", str(params(root, "fail"))]
    stopped = []
    for _ in range(len(kinds)):
        try:
            main(argv)
            break  # nothing bad left
        except SystemExit as e:
            assert e.code == 1
        err = capsys.readouterr().err
        last = err.splitlines()[-1]
        assert last.startswith("error: raw/") and not CONTROL.search(err) and "Traceback" not in err, err
        name = next(n for n in kinds if re.match(rf"error: {re.escape(shown(n))}( \(|:)", last) and n not in stopped)
        [entry] = json.loads((root / "out" / "rejects.json").read_text())
        assert entry["path"] == "raw/" + os.fsencode(name).decode("utf-8", "backslashreplace")
        stopped.append(name)
        os.unlink(os.fsencode(root / "raw") + b"/" + os.fsencode(name))
    assert sorted(stopped) == sorted(n for n, k in kinds.items() if k == "rejected")


def test_skip_mode_that_keeps_no_block_still_writes_its_rejects(corpus):
    root, kinds = corpus
    for name in [n for n, k in kinds.items() if k == "kept"] + ["ansi_bad_record.jsonl"]:  # its first record is good
        (root / "raw" / name).unlink()
    rc, err, _ = run_stage([*EXTRACT, "--params", str(params(root, "skip"))], root)
    assert rc == 1 and err.splitlines()[-1].startswith("error: raw: no blocks: "), err
    rejects = json.loads((root / "out" / "rejects.json").read_text())
    assert len(rejects) == sum(k == "rejected" for k in kinds.values()) - 1
    assert not (root / "out" / "blocks.jsonl").exists()


def test_every_data_stage_after_extract_runs_on_what_skip_kept_within_1_5_gib(corpus, tiny_base):
    # 1.5 GiB: the 10,000-turn conversation's 5,000 examples each keep as much history as fits model.max_seq_len
    # (at 3 characters a token); validate peaked at 1.10 GB with 1024 tokens, under 1 GiB with 384.
    root, _ = corpus
    p = params(root, "skip")
    assert run_stage([*EXTRACT, "--params", str(p)], root)[0] == 0
    for stage, argv in stage_args(HEATING_TASKS, p).items():
        argv = [*argv, "--model", str(tiny_base)] if stage == "validate" else argv
        rc, err, peak = run_stage(argv, root)
        assert rc in (0, 1) and "Traceback" not in err and not CONTROL.search(err), (stage, err)
        assert rc == 0 or len([line for line in err.splitlines() if line.startswith(("error", "Error"))]) == 1
        assert peak < 1.5 * GIB, (stage, peak)
    examples = [json.loads(line) for line in (root / "out" / "examples.jsonl").open()]
    chat = [e for e in examples if e["source"].startswith("raw/long_chat.jsonl")]
    assert len(chat) == TURNS // 2  # one per assistant turn, each history cut to what could fit
    assert (root / "out" / "examples.jsonl").stat().st_size < 100_000_000
