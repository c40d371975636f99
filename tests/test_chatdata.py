"""Bring-your-own chat data: extract keeps every turn of an imported conversation and its own system message, alpaca's
`input`, and reads a JSON array file (alpaca_data.json style) like JSONL, with errors naming the element and line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from finetune.cli import group, main
from tests.conftest import params_file

SYSTEM = "You are the support desk of a bicycle-lock maker. Answer in one or two sentences."
FOUR_TURNS = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "My U-lock key turns but the shackle stays shut."},
    {"role": "assistant", "content": "Spray a little dry lubricant into the keyway and work the key a few times."},
    {"role": "user", "content": "Done, still stuck."},
    {"role": "assistant", "content": "Push the shackle down firmly while you turn the key: that frees a stuck latch."},
    {"role": "user", "content": "That worked. Can I use oil next time?"},
    {"role": "assistant", "content": "Avoid oil: it collects grit. Dry PTFE spray keeps the cylinder clean."},
    {"role": "user", "content": "Where do I buy a spare key?"},
    {"role": "assistant", "content": "Order one with the number on your key card from our spare-parts page."},
]
ALPACA = {"instruction": "Convert the torque to newton metres.", "input": "12 lbf·ft", "output": "16.3 N·m"}
SHAREGPT = {
    "system": "Answer as a locksmith would.",
    "conversations": [
        {"from": "human", "value": "Can a lost combination be reset?"},
        {"from": "gpt", "value": "Only with the reset tool that came with the lock."},
    ],
}


def extract(tmp_path, monkeypatch, files: dict, on_error: str = "fail"):
    """Run `finetune extract` on tmp_path/raw holding `files`; (result, blocks or None, rejects or None)."""
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        (tmp_path / "raw").mkdir(exist_ok=True)
        (tmp_path / "raw" / name).write_text(content, encoding="utf-8")
    params_file(tmp_path / "params.yaml", {"extract": {"on_error": on_error}})
    out = ["--output", "out/blocks.jsonl", "--metrics", "out/m.json", "--rejects", "out/rejects.json"]
    result = CliRunner().invoke(group, ["extract", "--input", "raw", *out, "--params", "params.yaml"])
    out_dir = tmp_path / "out"
    blocks = [json.loads(line) for line in (out_dir / "blocks.jsonl").open()] if out_dir.is_dir() else None
    rejects = json.loads((out_dir / "rejects.json").read_text()) if out_dir.is_dir() else None
    return result, blocks, rejects


def test_a_four_turn_conversation_keeps_every_turn_and_its_system_message(tmp_path, monkeypatch):
    result, blocks, _ = extract(tmp_path, monkeypatch, {"desk.jsonl": json.dumps({"messages": FOUR_TURNS}) + "\n"})
    assert result.exit_code == 0, result.output
    (qa,) = blocks
    assert qa["kind"] == "qa"
    assert qa["messages"] == FOUR_TURNS  # not cut to the first question and the last answer
    assert qa["title"] == "My U-lock key turns but the shackle stays shut."
    assert qa["headings"] == ["desk"]
    assert qa["text"].splitlines()[0] == f"system: {SYSTEM}"
    assert len(qa["text"].splitlines()) == 9


def test_alpaca_input_and_a_sharegpt_system_prompt_are_kept(tmp_path, monkeypatch):
    lines = "\n".join(json.dumps(r) for r in (ALPACA, SHAREGPT)) + "\n"
    _, blocks, _ = extract(tmp_path, monkeypatch, {"mixed.jsonl": lines})
    alpaca, sharegpt = (b["messages"] for b in blocks)
    assert alpaca == [
        {"role": "user", "content": "Convert the torque to newton metres.\n\n12 lbf·ft"},
        {"role": "assistant", "content": "16.3 N·m"},
    ]
    assert sharegpt == [
        {"role": "system", "content": "Answer as a locksmith would."},
        {"role": "user", "content": "Can a lost combination be reset?"},
        {"role": "assistant", "content": "Only with the reset tool that came with the lock."},
    ]


def test_a_json_array_file_reads_like_jsonl_one_block_per_element(tmp_path, monkeypatch):
    records = [{"messages": FOUR_TURNS}, ALPACA, SHAREGPT]
    files = {"array.json": json.dumps(records, indent=2), "lines.jsonl": "\n".join(map(json.dumps, records))}
    result, blocks, _ = extract(tmp_path, monkeypatch, files)
    assert result.exit_code == 0, result.output
    from_array = [b for b in blocks if b["source"].startswith("raw/array.json#")]
    from_lines = [b for b in blocks if b["source"].startswith("raw/lines.jsonl#")]
    assert [b["source"] for b in from_array] == [f"raw/array.json#element={i}" for i in range(3)]
    assert [b["messages"] for b in from_array] == [b["messages"] for b in from_lines]
    assert [b["headings"] for b in from_array] == [["array"]] * 3


def test_a_minified_json_array_still_gives_each_element_its_own_source(tmp_path, monkeypatch):
    # Sources must differ: the train/val split groups examples by source.
    _, blocks, _ = extract(
        tmp_path, monkeypatch, {"min.json": json.dumps([ALPACA, SHAREGPT, {"messages": FOUR_TURNS}])}
    )
    assert len({b["source"] for b in blocks}) == 3


BROKEN_ARRAY = """[
  {"instruction": "Name the lock.", "output": "The Kettra U-lock."},
  {"instruction": "Its weight?", "output": "1.2 kg."},
  {"instruction": "Its shackle?",
   "output": "16 mm hardened steel."
  {"instruction": "Its price?", "output": "49 euros."}
]
"""


@pytest.mark.parametrize(
    "content, message",
    [
        (BROKEN_ARRAY, "raw/bad.json:6 (element 2): malformed JSON: Expecting ',' delimiter at column 3"),
        (
            '{"messages": []}',
            "raw/bad.json:1: expected a JSON array of records ([{...}, {...}]); one record per line is a .jsonl file",
        ),
        ("[]", "raw/bad.json:1: no records, the array is empty"),
        ('[{"instruction": "a", "output": "b"}] [1]', "raw/bad.json:1: extra data after the array's closing ]"),
        (
            '[\n{"instruction": "a", "output": "b"}\n{"x": 1}]',
            "raw/bad.json:3: expected , or ] after element 0, got '{'",
        ),
        (
            '[{"instruction": "a", "output": "b"},\n  "text"]',
            "raw/bad.json:2 (element 1): expected a JSON object, got str",
        ),
        (
            '[{"instruction": "a", "output": "b"},\n\n {"messages": [{"role": "assistant", "content": "hi"}]}]',
            "raw/bad.json:3 (element 1): roles must alternate user, assistant, …; got assistant",
        ),
    ],
)
def test_a_broken_json_array_is_one_line_naming_the_file_line_and_element(
    tmp_path, monkeypatch, capsys, content, message
):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "bad.json").write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["extract", "--input", "raw", "--output", "out/b.jsonl", "--metrics", "m.json", "--rejects", "r.json"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in err


def test_on_error_skip_leaves_out_a_bad_element_and_names_it_in_rejects(tmp_path, monkeypatch):
    array = [ALPACA, {"instruction": "Its weight?"}, SHAREGPT]
    result, blocks, rejects = extract(tmp_path, monkeypatch, {"set.json": json.dumps(array, indent=1)}, "skip")
    assert result.exit_code == 0, result.output
    assert [b["source"] for b in blocks] == ["raw/set.json#element=0", "raw/set.json#element=2"]
    assert rejects == [
        {
            "path": "raw/set.json",
            "line": 7,  # "[", then 5 lines of element 0 (indent=1), then element 1's "{"
            "element": 1,
            "rule": "unknown record shape (keys: instruction); expected `messages`, `conversations` (sharegpt) or "
            "`instruction` + `output` (alpaca)",
            "skipped": "record",
        }
    ]


def test_invalid_utf8_in_a_json_array_names_its_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "bad.json").write_bytes(b'[\n{"instruction": "a",\n "output": "\xff"}]')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["extract", "--input", "raw", "--output", "out/b.jsonl", "--metrics", "m.json", "--rejects", "r.json"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: raw/bad.json:3: not valid UTF-8 (invalid start byte); save it as UTF-8"
    )


@pytest.mark.parametrize(
    "answer, found",
    [
        ("Eat a banana! " * 2000, ("Eat a banana!", 2000)),
        ("Sure. " + "Eat a banana! " * 6, ("Eat a banana!", 6)),  # a short lead-in before the loop
        ("Eat a banana! " * 6 + "Hope this helps.", ("Eat a banana!", 6)),  # a short tail after it
        ("Eat a banana! Eat a banana! Eat a banana! Eat a ba", None),  # three and a bit copies: not yet a loop
        ("No, no, no. The valve must stay shut while the system is filled.", None),
        ("Close valve 1. Close valve 2. Close valve 3. Close valve 4. Close valve 5.", None),  # counted steps vary
        (
            "Check the fuse. " * 4 + "If it is intact, measure the supply voltage at the terminal block, then "
            "replace the control board if the voltage is right but the unit stays dark.",
            None,
        ),  # loop under half
    ],
)
def test_an_answer_that_is_one_phrase_repeated_is_recognised(answer, found):
    from finetune.schema import repeated_phrase

    assert repeated_phrase(answer) == found
