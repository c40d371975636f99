"""`finetune extract` on record files and plain text: a CSV row per block, a chat JSONL line per conversation (OpenAI
messages, alpaca or sharegpt), a text paragraph per section, and a bad record or file as one error naming it."""

from __future__ import annotations

import json

import pytest

from finetune.io import InputError
from finetune.schema import message_problems
from tests.extract_corpus import CATALOG_CSV, QA_JSONL, extract


def test_csv_gives_one_row_block_per_data_row_whatever_its_columns(tmp_path, monkeypatch):
    _, blocks, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV})
    assert [(b["kind"], b["source"], b["title"], b["headings"]) for b in blocks] == [
        ("row", "raw/catalog.csv#row=1", "catalog", ["catalog"]),
        ("row", "raw/catalog.csv#row=2", "catalog", ["catalog"]),
    ]
    assert blocks[0]["columns"] == ["model_code", "family", "name", "rating", "unit", "informal_names"]
    assert blocks[0]["rows"] == [
        {"model_code": "CA-24C", "family": "Calora", "name": "Brenntal Calora CA-24C combi boiler", "rating": "24",
         "unit": "kW", "informal_names": "calora 24 combi"}
    ]  # fmt: skip
    assert blocks[0]["text"].splitlines()[:2] == ["model_code: CA-24C", "family: Calora"]


def test_csv_row_with_too_many_fields_names_the_file_and_line(tmp_path, monkeypatch):
    bad = CATALOG_CSV + "PL-15,Pellora,Brenntal Pellora PL-15,15,kW,,extra\n"
    result, _, _ = extract(tmp_path, monkeypatch, {"catalog.csv": bad})
    assert isinstance(result.exception, InputError)
    assert str(result.exception) == "raw/catalog.csv:4 (row 3): has 7 fields, the header has 6"


def test_jsonl_chat_alpaca_and_sharegpt_become_openai_messages(tmp_path, monkeypatch):
    _, blocks, _ = extract(tmp_path, monkeypatch, {"qa.jsonl": QA_JSONL})
    assert [b["kind"] for b in blocks] == ["qa"] * 4
    assert [b["source"] for b in blocks] == [f"raw/qa.jsonl#line={n}" for n in (1, 2, 3, 4)]
    chat, alpaca, sharegpt, alpaca_no_input = (b["messages"] for b in blocks)
    assert chat[0] == {"role": "user", "content": "What does F22 mean?"}
    assert alpaca == [
        {"role": "user", "content": "Convert to bar.\n\n1500 mbar"},
        {"role": "assistant", "content": "1.5 bar"},
    ]
    assert [m["role"] for m in sharegpt] == ["system", "user", "assistant"]
    assert sharegpt[1]["content"] == "How often is the anode checked?"
    assert alpaca_no_input[0] == {
        "role": "user",
        "content": "Name the Calora refrigerant.",
    }  # empty input: no blank line
    assert all(message_problems(m) == [] for m in (chat, alpaca, sharegpt, alpaca_no_input))
    assert blocks[2]["title"] == "How often is the anode checked?"  # the first user message, not the system prompt
    assert blocks[1]["text"] == "user: Convert to bar.\n\n1500 mbar\nassistant: 1.5 bar"


def test_qa_title_is_the_first_user_message_cut_to_80_characters(tmp_path, monkeypatch):
    long = {"messages": [{"role": "user", "content": "word " * 40}, {"role": "assistant", "content": "ok"}]}
    _, blocks, _ = extract(tmp_path, monkeypatch, {"qa.jsonl": json.dumps(long)})
    assert len(blocks[0]["title"]) == 80 and blocks[0]["title"].endswith("…")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"messages": [{"role": "user", "content": "hi"}', "raw/qa.jsonl:2: malformed JSON"),
        ('{"messages": [{"role": "assistant", "content": "hi"}]}', "raw/qa.jsonl:2: roles must alternate"),
        ('{"conversations": [{"from": "bot", "value": "hi"}]}', "raw/qa.jsonl:2: conversations[0] has from 'bot'"),
        ('{"question": "hi", "answer": "ho"}', "raw/qa.jsonl:2: unknown record shape (keys: answer, question)"),
    ],
)
def test_bad_jsonl_line_is_an_error_naming_the_file_and_line(tmp_path, monkeypatch, line, message):
    good = json.dumps({"instruction": "a", "output": "b"})
    result, _, _ = extract(tmp_path, monkeypatch, {"qa.jsonl": f"{good}\n{line}\n"})
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(message)


def test_txt_paragraphs_become_sections(tmp_path, monkeypatch):
    text = (
        "First paragraph, long enough to be kept as a block.\nSecond line.\n\nToo short.\n\n\n"
        "Third paragraph, after two blank lines, is long enough as well."
    )
    _, blocks, _ = extract(tmp_path, monkeypatch, {"notes/site.txt": text})
    assert [(b["source"], b["kind"]) for b in blocks] == [
        ("raw/notes/site.txt#para=1", "section"),
        ("raw/notes/site.txt#para=3", "section"),
    ]
    assert blocks[0]["text"] == "First paragraph, long enough to be kept as a block.\nSecond line."


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("spec.docx", b"PK\x03\x04", "raw/spec.docx: unsupported file type '.docx' (supported: "),
        ("latin1.md", b"# Title\n\nCaf\xe9 au lait\n", "raw/latin1.md:3: not valid UTF-8"),
        ("empty.csv", b"", "raw/empty.csv: empty file"),
    ],
)
def test_unreadable_files_are_errors_naming_the_file(tmp_path, monkeypatch, name, content, message):
    result, _, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV, name: content})
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(message)
