"""extract's per-file cache and worker processes: the output is the same with and without the cache and for any worker
count; a rerun reads only the files whose bytes, shaping params or reader code changed; the first bad file in sorted
order stops a failing run whatever the workers' timing."""

from __future__ import annotations

import json

import pytest

from finetune.documents import blockcache, corpus
from finetune.documents.ocr import OcrSettings
from finetune.documents.pages import RowLabels
from finetune.io import InputError
from tests.extract_corpus import CATALOG_CSV, MANUAL_MD, PDF_PAGES, QA_JSONL, write_pdf

ROWS = RowLabels.from_lists([["Symptom", "Cause", "Remedy"]], ["Parameter", "Value", "Unit"], ["Specifications"])


@pytest.fixture
def raw(tmp_path, monkeypatch):
    """A raw folder of every kind of file, one CSV row bad (so on_error: skip has a reject to list)."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "manual.md").write_text(MANUAL_MD + "\n" + MANUAL_MD)  # its second half: duplicates, dropped
    (folder / "catalog.csv").write_text(CATALOG_CSV + "x,y\n")
    (folder / "chats.jsonl").write_text(QA_JSONL)
    write_pdf(folder / "aquis.pdf", PDF_PAGES)
    write_pdf(folder / "aquis_copy.pdf", PDF_PAGES[:2])
    return folder


def extract(folder, cache=None, workers=1, on_error="skip", **changes):
    rejects: list = []
    args = {"min_chars": 40, "max_chars": 800, "rows": ROWS, "not_titles": ("Contents",), "ocr": OcrSettings()}
    args |= changes
    blocks, counts = corpus.run(folder, args.pop("min_chars"), False, on_error, rejects, args.pop("max_chars"),
                                workers=workers, cache_dir=cache, **args)  # fmt: skip
    return json.dumps([blocks, counts, rejects])


@pytest.fixture
def reads(monkeypatch):
    """The files read_one reads in this process (extract with workers=1), in order."""
    seen: list[str] = []
    real = corpus.file_blocks

    def spy(path, *args):
        seen.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(corpus, "file_blocks", spy)
    return seen


def test_output_is_the_same_with_and_without_the_cache_and_for_any_worker_count(raw, tmp_path):
    plain = extract(raw)
    assert json.loads(plain)[2], "the corpus has a reject, so rejects are compared too"
    assert extract(raw, workers=2) == plain
    assert extract(raw, tmp_path / "cache", workers=2) == plain  # filling the cache
    assert extract(raw, tmp_path / "cache", workers=1) == plain  # every file from it
    assert extract(raw, tmp_path / "cache", workers=2, on_error="skip") == plain


def test_a_rerun_reads_only_the_file_that_changed(raw, tmp_path, reads):
    extract(raw, tmp_path / "cache")
    assert sorted(reads) == sorted(p.name for p in raw.iterdir())
    reads.clear()
    write_pdf(raw / "aquis_copy.pdf", PDF_PAGES[:3])
    changed = extract(raw, tmp_path / "cache")
    assert reads == ["aquis_copy.pdf"]
    assert changed == extract(raw)  # and gives what a run without the cache gives


def test_a_changed_param_rereads_only_the_formats_it_shapes(raw, tmp_path, reads):
    extract(raw, tmp_path / "cache")
    reads.clear()
    extract(raw, tmp_path / "cache", ocr=OcrSettings(dpi=200))  # scanned pages only: the PDFs
    assert sorted(reads) == ["aquis.pdf", "aquis_copy.pdf"]
    reads.clear()
    extract(raw, tmp_path / "cache", not_titles=("Overview",))  # a Markdown, HTML or text document's name
    assert reads == ["manual.md"]
    reads.clear()
    cached = extract(raw, tmp_path / "cache", min_chars=10)
    assert sorted(reads) == ["aquis.pdf", "aquis_copy.pdf", "manual.md"]  # not the CSV, nor the chat records
    assert cached == extract(raw, min_chars=10)


def test_a_changed_reader_module_rereads_only_the_formats_it_reads(raw, tmp_path, reads, monkeypatch):
    extract(raw, tmp_path / "cache")
    reads.clear()
    real = blockcache.module_source
    monkeypatch.setattr(blockcache, "module_source", lambda name: real(name) + b"# edited" * (name == "pdf"))
    blockcache.code_version.cache_clear()
    try:
        extract(raw, tmp_path / "cache")
    finally:
        blockcache.code_version.cache_clear()
    assert sorted(reads) == ["aquis.pdf", "aquis_copy.pdf"]


def test_a_damaged_cache_entry_is_read_again_not_taken(raw, tmp_path, reads):
    plain = extract(raw, tmp_path / "cache")
    for entry in (tmp_path / "cache").rglob("*.json"):
        entry.write_text(entry.read_text()[:20])  # what a write cut short would leave, were writes not atomic
    reads.clear()
    assert extract(raw, tmp_path / "cache") == plain
    assert len(reads) == 5


@pytest.mark.parametrize("workers", [1, 2])
def test_with_on_error_fail_the_first_bad_file_in_sorted_order_stops_the_run(raw, workers):
    (raw / "zz_bad.csv").write_text("a,a\n1,2\n")
    (raw / "a_bad.md").write_bytes(b"# x\n\x00")
    with pytest.raises(InputError, match=r"^raw/a_bad\.md:2: binary data"):
        extract(raw, workers=workers, on_error="fail")
    (raw / "a_bad.md").unlink()
    with pytest.raises(InputError, match=r"^raw/catalog\.csv:\d+ \(row \d+\): has 2 fields"):
        extract(raw, workers=workers, on_error="fail")  # a bad record stops it too, before zz_bad.csv


def test_a_cache_entry_serves_both_on_error_modes(raw, tmp_path):
    extract(raw, tmp_path / "cache", on_error="skip")
    with pytest.raises(InputError, match=r"^raw/catalog\.csv:\d+ \(row \d+\)"):
        extract(raw, tmp_path / "cache", on_error="fail")


def test_workers_auto_is_one_per_core():
    assert corpus.worker_count("auto") >= 1 and corpus.worker_count(3) == 3


def test_every_module_a_reader_imports_is_in_some_formats_code_version():
    """A reader module missing from blockcache.READER_MODULES would leave its edits out of the key: stale entries."""
    import ast
    from pathlib import Path

    folder = Path(blockcache.__file__).parent
    found, todo = set(), ["readers"]
    while todo:
        name = todo.pop()
        found.add(name)
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("finetune.documents."):
                module = node.module.rsplit(".", 1)[1]
                todo += [module] if module not in found else []
    keyed = {*blockcache._SHARED, *(m for modules in blockcache.READER_MODULES.values() for m in modules)}
    assert found <= keyed, found - keyed
