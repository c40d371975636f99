"""stages/io.py: outputs are replaced whole or not at all, and a bad input line is reported by file and line."""

from __future__ import annotations

import json

import pytest

from finetune.io import InputError, atomic_path, load_jsonl, read_jsonl, write_json, write_jsonl


class Boom(Exception):
    pass


def test_atomic_path_replaces_the_output_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")
    with atomic_path(out) as tmp:
        assert tmp != out and tmp.parent == out.parent  # a sibling, so the final rename is atomic
        tmp.write_text("new")
        assert out.read_text() == "old"  # nothing is visible before the body finishes
    assert out.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_old_output_and_removes_the_temp_file_when_the_body_raises(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")
    with pytest.raises(Boom), atomic_path(out) as tmp:
        tmp.write_text("half-written")
        raise Boom
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_creates_no_output_when_the_first_write_fails(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    with pytest.raises(Boom), atomic_path(out) as tmp:
        tmp.write_text("{}\n")
        raise Boom
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_atomic_directory_keeps_the_old_directory_when_the_body_raises(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "weights").write_text("old")
    with pytest.raises(Boom), atomic_path(out, is_dir=True) as tmp:
        (tmp / "weights").write_text("new")
        raise Boom
    assert (out / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_directory_is_replaced_whole_on_success(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.bin").write_text("from an older run")
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "model.safetensors").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_read_jsonl_names_file_and_line_of_malformed_json(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text('{"id": 1}\n\n{"id": 2,}\n{"id": 3}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        list(read_jsonl(path))
    assert err.value.path == str(path)
    assert err.value.line == 3  # blank lines count: the number is the editor's line number
    assert str(err.value).startswith(f"{path}:3: malformed JSON")


def test_read_jsonl_names_file_and_line_of_invalid_utf8(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": 2}\n{"text": "Gr\xf6\xdfe"}\n{"id": 4}\n')  # latin-1 "Größe" on line 3
    with pytest.raises(InputError) as err:
        list(read_jsonl(path))
    assert err.value.line == 3
    assert str(err.value).startswith(f"{path}:3: not valid UTF-8")


def test_read_jsonl_names_the_line_of_invalid_utf8_far_into_a_large_file(tmp_path):
    # Text files are decoded in chunks: the line must still be the one holding the bad byte.
    path = tmp_path / "examples.jsonl"
    path.write_bytes(b'{"id": 1}\n' * 20_000 + b'{"text": "\xff"}\n')
    with pytest.raises(InputError) as err:
        list(read_jsonl(path))
    assert err.value.line == 20_001


def test_read_jsonl_rejects_a_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text('{"id": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r":2: expected a JSON object, got list"):
        list(read_jsonl(path))


def test_read_jsonl_reports_a_missing_file_as_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


def test_read_jsonl_yields_line_numbers_and_skips_blank_lines(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]


def test_write_jsonl_round_trips_unicode_unescaped(tmp_path):
    records = [
        {"id": "de", "text": "Größe des Wärmetauschers: 24 kW, Maß 1050 × 560 mm"},
        {"id": "mix", "text": "CO₂ sensor 0–10 V — ✓ 東京 😀", "nested": {"list": ["é", "ñ"]}},
    ]
    path = tmp_path / "out.jsonl"
    assert write_jsonl(path, records) == 2
    assert load_jsonl(path) == records
    raw = path.read_text(encoding="utf-8")
    assert "Größe" in raw and "😀" in raw  # written as UTF-8, not \u escapes: diffs stay readable
    assert raw.count("\n") == 2


def test_write_json_round_trips_unicode(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"größe": 1.5, "task": "ÜBERSICHT"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"größe": 1.5, "task": "ÜBERSICHT"}
    assert "größe" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "bad, words",
    [
        (b'{"id": 2,}', "malformed JSON: Expecting property name enclosed in double quotes at column 10"),
        (b'["id", 2]', "expected a JSON object, got list"),
        (b'{"text": "Gr\xf6\xdfe"}', "not valid UTF-8 (invalid start byte at byte 12 of the line)"),
    ],
)
def test_every_jsonl_reader_names_a_bad_line_in_the_same_words_and_reacts_in_its_own_way(tmp_path, bad, words):
    from finetune.documents.textfiles import conversation
    from finetune.validation.records import check_file

    good = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    other = b'{"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}\n'
    path = tmp_path / "chat.jsonl"
    path.write_bytes(good + bad + b"\n" + other)  # distinct: verify also flags exact duplicates
    # The pipeline's reader stops at the line ...
    with pytest.raises(InputError) as err:
        list(read_jsonl(path))
    assert str(err.value) == f"{path}:2: {words}"
    # ... `finetune verify data` lists it and reads on (3 examples counted, only line 2 wrong) ...
    assert check_file(path) == (3, [(2, words)])
    # ... and extract rejects that one record (ValueError), keeping the others.
    with pytest.raises(ValueError) as rejected:
        conversation(bad + b"\n")
    assert str(rejected.value) == words
    assert conversation(good) == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_progress_in_a_log_is_one_line_when_the_work_ends_and_no_bar(capsys):
    from finetune.io import progress

    assert list(progress(range(300), "base", "pretrain", "step")) == list(range(300))
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 1 and err.startswith("[base] pretrain: 300 steps in "), err


def test_progress_on_a_terminal_is_a_bar(monkeypatch):
    import io
    import sys

    from finetune.io import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert list(progress(range(3), "base", "pretrain", "step")) == [0, 1, 2]
    assert "[base] pretrain: 100%" in sys.stderr.getvalue() and "\r" in sys.stderr.getvalue()


def test_work_that_fails_under_progress_logs_no_finished_line(capsys):
    from finetune.io import Progress

    with pytest.raises(ValueError), Progress("generate", "teacher pairs", 3, "chunk") as bar:
        bar.update()
        raise ValueError("server down")
    assert capsys.readouterr().err == ""
