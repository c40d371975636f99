"""`finetune verify data PATH`: one `PATH:LINE: problem` line per problem, a count on stderr, exit 1 if any."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from finetune.cli import group


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
        json.dumps(chat()),  # 9 fine
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
        tmp_path / "long.jsonl", [json.dumps(chat()), json.dumps(chat(answer="It draws 2.4 kW. " * 50))]
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
