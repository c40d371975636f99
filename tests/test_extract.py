"""`finetune extract`: raw documents in, one Block record per section's prose, ordered list, table, glossary, code
block, CSV row and imported conversation out (the contract is in finetune/schema.py). Kinds are structural: a heading
word or a column name never changes a block's kind.

This file: the stage as a whole (params, errors, outputs, ids, metrics, the sample corpus); per format:
test_extract_markup.py, test_extract_pages.py, test_extract_records.py, test_extract_structure.py."""

from __future__ import annotations

import pytest

from finetune.documents.corpus import run
from finetune.io import InputError
from finetune.schema import BLOCK_KINDS
from tests.conftest import params_file
from tests.extract_corpus import CATALOG_CSV, MANUAL_HTML, MANUAL_MD, PDF_PAGES, QA_JSONL, REPO, extract


def test_on_error_must_be_fail_or_skip(tmp_path, monkeypatch):
    params_file(tmp_path / "params.yaml", {"extract": {"on_error": "ignore"}})
    result, _, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV}, "--params", "params.yaml")
    assert str(result.exception) == "params.yaml: extract.on_error: input should be 'fail' or 'skip' (got 'ignore')"


def test_the_console_script_prints_an_error_as_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    from finetune.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "x.docx").write_bytes(b"PK")
    with pytest.raises(SystemExit) as exit_:
        main(["extract", "--input", "raw", "--output", "out/b.jsonl", "--metrics", "m.json", "--rejects", "r.json"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: raw/x.docx: unsupported file type")


def test_a_failed_run_leaves_the_previous_output_untouched_and_no_temp_files(tmp_path, monkeypatch):
    result, blocks, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV})
    assert result.exit_code == 0 and len(blocks) == 2
    before = (tmp_path / "out" / "blocks.jsonl").read_bytes()
    # A later file in sorted order fails after the CSV was read.
    result, blocks, _ = extract(tmp_path, monkeypatch, {"qa.jsonl": "{not json}\n"})
    assert isinstance(result.exception, InputError)
    assert (tmp_path / "out" / "blocks.jsonl").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["blocks.jsonl", "extract.json", "rejects.json"]


def test_a_failed_first_run_writes_only_the_rejects_file_naming_what_stopped_it(tmp_path, monkeypatch):
    result, _, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV, "qa.jsonl": "{not json}\n"})
    assert isinstance(result.exception, InputError)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rejects.json"]
    assert "raw/qa.jsonl" in (tmp_path / "out" / "rejects.json").read_text()


def test_ids_are_stable_content_hashes_and_unique(tmp_path, monkeypatch):
    files = {"manual.md": MANUAL_MD, "catalog.csv": CATALOG_CSV, "qa.jsonl": QA_JSONL, "manual.pdf": PDF_PAGES}
    _, first, _ = extract(tmp_path, monkeypatch, files)
    _, second, _ = extract(tmp_path, monkeypatch, files)
    assert [b["id"] for b in first] == [b["id"] for b in second]
    assert len({b["id"] for b in first}) == len(first)


def test_metrics_count_files_per_format_and_blocks_per_kind(tmp_path, monkeypatch):
    files = {"manual.md": MANUAL_MD, "manual.html": MANUAL_HTML, "catalog.csv": CATALOG_CSV, "qa.jsonl": QA_JSONL}
    _, blocks, metrics = extract(tmp_path, monkeypatch, files)
    assert metrics["files"] == {"csv": 1, "html": 1, "image": 0, "json": 0, "jsonl": 1, "md": 1, "pdf": 0, "txt": 0}
    assert metrics["rejected"] == {"files": 0, "records": 0}
    assert metrics["blocks"] == {"code": 0, "definitions": 0, "list": 2, "qa": 4, "row": 2, "section": 2, "table": 4}
    assert metrics["total_blocks"] == len(blocks) == sum(metrics["blocks"].values())
    assert list(metrics) == sorted(metrics) and list(metrics["blocks"]) == sorted(metrics["blocks"])


# The fields each kind must fill (non-empty) besides id, source, kind, title, headings and text.
REQUIRED = {"table": ("columns", "rows"), "row": ("columns", "rows"), "list": ("items",), "qa": ("messages",),
            "definitions": ("items",), "code": ("code",), "section": ()}  # fmt: skip


@pytest.mark.skipif(not (REPO / "domains" / "heating" / "raw").is_dir(), reason="the sample corpus is not there yet")
def test_the_sample_corpus_gives_blocks_from_every_file_with_every_field(monkeypatch):
    monkeypatch.chdir(REPO)
    blocks, counts = run("domains/heating/raw")
    files = sorted(
        p.relative_to(REPO).as_posix() for p in (REPO / "domains" / "heating" / "raw").rglob("*") if p.is_file()
    )
    assert sorted({b["source"].split("#")[0] for b in blocks}) == files  # every file produced blocks
    assert len({b["id"] for b in blocks}) == len(blocks) == counts["total_blocks"]
    for b in blocks:
        assert b["kind"] in BLOCK_KINDS
        for field in ("id", "source", "kind", "title", "text"):
            assert isinstance(b[field], str) and b[field].strip(), (field, b)
        assert isinstance(b["headings"], list) and b["headings"], b
        if b["kind"] != "qa":  # a conversation's title is its first question
            assert b["title"] == " / ".join(b["headings"]), b
        for extra in REQUIRED[b["kind"]]:
            assert b[extra], (extra, b)
        assert "#" in b["source"] and b["source"].startswith("domains/heating/raw/")
