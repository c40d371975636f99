"""`finetune verify data PATH`: one `PATH:LINE: problem` line per problem, a count on stderr, exit 1 if any."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from finetune.cli import group
from tests.conftest import params_file


def chat(question="What is the rated power of the CA-24C?", answer="2.4 kW."):
    return {
        "messages": [
            {"role": "system", "content": "You answer questions about heat pumps."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def write_lines(path, lines):
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def verify(*args):
    return CliRunner().invoke(group, ["verify", "data", *[str(a) for a in args]])


def test_clean_file_exits_zero(tmp_path):
    path = write_lines(tmp_path / "clean.jsonl", [json.dumps(chat()), "", json.dumps(chat("Another?", "Yes."))])
    result = verify(path)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == "2 examples, 0 problems"


def test_each_problem_is_reported_with_its_line_and_checking_goes_on(tmp_path):
    system_only = {"messages": [{"role": "system", "content": "You answer questions."}]}
    not_a_string = chat()
    not_a_string["messages"][2]["content"] = ["2.4", "kW"]
    wrong_order = chat()
    wrong_order["messages"][1:] = wrong_order["messages"][:0:-1]
    pipeline = {"id": "x1", "task": "SPEC", "source": "", **chat()}  # has the pipeline fields: held to them
    lines = [
        json.dumps(chat()),  # 1 fine
        '{"messages": [{"role": "user", "content": "hi"}',  # 2 malformed JSON
        json.dumps(system_only),  # 3
        json.dumps(not_a_string),  # 4
        b'{"messages": "\xff"}',  # 5 invalid UTF-8
        json.dumps(wrong_order),  # 6
        json.dumps(pipeline),  # 7
        "[1, 2]",  # 8 not an object
        json.dumps(chat("And the CA-30C?", "3.0 kW.")),  # 9 fine
    ]
    path = write_lines(tmp_path / "broken.jsonl", lines)
    result = verify(path)
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert all(line.startswith(f"{path}:") for line in out)
    by_line = {}
    for line in out:
        lineno, problem = line[len(str(path)) + 1 :].split(": ", 1)
        by_line.setdefault(int(lineno), []).append(problem)
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8]
    assert "malformed JSON" in by_line[2][0]
    assert by_line[3] == ["no user or assistant turn (system message only)"]
    assert by_line[4] == ["message 2 (assistant) content is list, expected a string"]
    assert "not valid UTF-8" in by_line[5][0]
    assert "roles must alternate" in by_line[6][0]
    assert by_line[7] == ["`source` must be a non-empty string"]
    assert "expected a JSON object" in by_line[8][0]
    assert result.stderr.strip() == f"9 examples, {len(out)} problems"


def save_tiny_tokenizer(path):
    """The pipeline's own tokenizer builder (byte-level BPE + ChatML) on a few sentences: fast, offline, real."""
    from finetune.training.base_model import train_tokenizer

    train_tokenizer(
        ["What is the rated power of the CA-24C?", "It draws 2.4 kW."] * 10, vocab_size=400
    ).save_pretrained(path)
    return path


def test_model_adds_the_length_check(tmp_path):
    model = save_tiny_tokenizer(tmp_path / "tok")
    path = write_lines(
        tmp_path / "long.jsonl",
        [json.dumps(chat()), json.dumps(chat(answer=" ".join(f"Step {i}: check valve {i}." for i in range(60))))],
    )
    result = verify(path, "--model", model, "--max-seq-len", 128)
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith(f"{path}:2: ") and "more than --max-seq-len 128" in result.stdout


def test_max_seq_len_needs_a_model(tmp_path):
    path = write_lines(tmp_path / "clean.jsonl", [json.dumps(chat())])
    result = verify(path, "--max-seq-len", 64)
    assert result.exit_code == 2
    assert "--max-seq-len needs --model" in result.output


def test_verify_does_not_import_great_expectations(tmp_path):
    path = write_lines(tmp_path / "clean.jsonl", [json.dumps(chat())])
    code = (
        "import sys; from finetune.cli import main\n"
        "try: main(['verify', 'data', sys.argv[1]])\n"
        "except SystemExit: pass\n"
        "assert 'great_expectations' not in sys.modules and 'transformers' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def problems_by_line(result, path):
    """{line: [problem, ...]} from verify's stdout, checking every line has the `PATH:LINE: ` shape."""
    found = {}
    for line in result.stdout.splitlines():
        assert line.startswith(f"{path}:"), line
        lineno, problem = line[len(str(path)) + 1 :].split(": ", 1)
        found.setdefault(int(lineno), []).append(problem)
    return found


ALPACA = {"instruction": "Rated power of the CA-30C?", "output": "3.0 kW."}
ALPACA_AS_MESSAGES = {
    "messages": [{"role": "user", "content": ALPACA["instruction"]}, {"role": "assistant", "content": "3.0 kW."}]
}
LONG = " ".join(f"Step {i}: open valve {i} a quarter turn." for i in range(150))


def test_each_degenerate_kind_is_flagged_with_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the built-in cap of 4,000 characters
    four_turns = chat()
    four_turns["messages"] += [
        {"role": "user", "content": "And in standby?"},
        {"role": "assistant", "content": "0.8 kW."},
    ]
    looping_middle = json.loads(json.dumps(four_turns))
    looping_middle["messages"][2]["content"] = "Eat a banana! " * 200
    lines = [
        json.dumps(four_turns),  # 1 fine
        json.dumps(chat(answer="  ")),  # 2 empty turn
        json.dumps(chat(answer="Eat a banana! " * 200)),  # 3 one phrase, 2,800 characters: under the cap
        json.dumps(chat(answer=LONG)),  # 4 over the cap, and no phrase repeated
        json.dumps(four_turns),  # 5 duplicate of 1
        json.dumps(ALPACA),  # 6
        json.dumps(ALPACA_AS_MESSAGES),  # 7 the same conversation in another shape
        json.dumps(looping_middle),  # 8 a looping turn in the middle of a conversation
    ]
    path = write_lines(tmp_path / "chats.jsonl", lines)
    result = verify(path)
    assert result.exit_code == 1
    assert problems_by_line(result, path) == {
        2: ["message 2 (assistant) has empty content"],
        3: ["message 2 (assistant): the answer is one phrase repeated 200 times: 'Eat a banana!'"],
        4: [f"message 2 (assistant): the answer has {len(LONG):,} characters, more than --max-answer-chars 4,000"],
        5: ["an exact duplicate: the same messages as line 1"],
        7: ["an exact duplicate: the same messages as line 6"],
        8: ["message 2 (assistant): the answer is one phrase repeated 200 times: 'Eat a banana!'"],
    }
    assert result.stderr.strip() == "8 examples, 6 problems"


def test_the_answer_cap_comes_from_params_unless_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params_file(tmp_path / "params.yaml", {"validate": {"max_answer_chars": 10}})
    path = write_lines(tmp_path / "chats.jsonl", [json.dumps(chat(answer="It draws 2.4 kW."))])
    assert "more than --max-answer-chars 10" in verify(path).stdout
    assert verify(path, "--max-answer-chars", 100).exit_code == 0


SHAPES = "`messages`, `conversations` (sharegpt) or `instruction` + `output` (alpaca)"


def test_a_json_array_is_checked_element_by_element(tmp_path):
    # indent=1: each chat() element is 16 lines, so the elements start on lines 2, 18, 34 and 37
    records = [chat(), chat(answer="Eat a banana! " * 20), {"instruction": "Rated power?"}, chat()]
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(records, indent=1))
    result = verify(path)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:18: element 1: message 2 (assistant): the answer is one phrase repeated 20 times: 'Eat a banana!'",
        f"{path}:34: element 2: unknown record shape (keys: instruction); expected {SHAPES}",
        f"{path}:37: element 3: an exact duplicate: the same messages as element 0 (line 2)",
    ]
    assert result.stderr.strip() == "4 examples, 3 problems"


def test_a_broken_json_array_reports_where_reading_stopped(tmp_path):
    path = tmp_path / "chats.json"
    path.write_text("[\n" + json.dumps(chat()) + ",\n" + json.dumps(chat())[:-2] + "\n]\n")
    result = verify(path)
    assert result.exit_code == 1
    # Element 1 (line 3) never closes its messages list: the parser stops at the end of the file, line 5.
    assert result.stdout == f"{path}:5: element 1: malformed JSON: Expecting ',' delimiter at column 1\n"
    assert result.stderr.strip() == "2 examples, 1 problems"


def test_upsampled_copies_in_a_pipeline_file_are_not_duplicates(tmp_path):
    original = {"id": "ab12", "task": "SPEC", "source": "domains/heating/raw/manual.md#h=Specs", **chat()}
    copy = {**original, "id": "ab12~2"}
    twin = {**original, "id": "cd34", "source": "domains/heating/raw/manual.md#h=Specs again"}
    path = write_lines(tmp_path / "train.jsonl", [json.dumps(r) for r in (original, copy, twin)])
    result = verify(path)
    assert result.stdout == f"{path}:3: an exact duplicate: the same messages as line 1\n"
