"""The two sample domains in other conventions than heating's (domains/cli_tool, domains/datasheets) extract with no code or params change: a
command-line tool's Markdown reference gives definitions and code, no tables; a set of electronics datasheets gives
tables with other columns (Symbol/Parameter/Min/Typ/Max/Unit, Pin/Name/Type/Description), its PDF too."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from finetune.documents.corpus import run
from finetune.params import Extract
from finetune.schema import BLOCK_KINDS
from tests.conftest import domain_params, row_labels

REPO = Path(__file__).resolve().parents[1]
MAX_CHARS = Extract().max_chars  # the default, as `finetune extract` would use it


@pytest.fixture(scope="module")
def corpus():
    """Blocks of a sample corpus, extracted with its domain's params from the repository root."""
    cache = {}

    def extract(name: str) -> list[dict]:
        if name not in cache:
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(REPO)
                cache[name] = run(
                    f"domains/{name}/raw",
                    Extract().min_chars,
                    max_chars=MAX_CHARS,
                    rows=row_labels(domain_params(name)),
                )[0]
        return cache[name]

    return extract


@pytest.mark.parametrize("name", ["cli_tool", "datasheets"])
def test_every_file_gives_blocks_of_the_contract_within_the_budget(corpus, name):
    blocks = corpus(name)
    files = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "domains" / name / "raw").iterdir())
    assert sorted({b["source"].split("#")[0] for b in blocks}) == files
    for b in blocks:
        assert b["kind"] in BLOCK_KINDS and b["title"] == " / ".join(b["headings"])
        assert "{#" not in b["title"] and "{#" not in b["source"]  # heading anchors are not words of a title
        if b["kind"] == "section":
            assert len(b["text"]) <= MAX_CHARS or "```" in b["text"], b["source"]


def test_the_cli_reference_gives_option_definitions_and_code_examples_but_no_tables(corpus):
    blocks = corpus("cli_tool")
    kinds = Counter(b["kind"] for b in blocks)
    assert kinds["table"] == 0 and kinds["definitions"] >= 6 and kinds["code"] >= 10
    options = {d["term"]: d["definition"] for b in blocks if b["kind"] == "definitions" for d in b["items"]}
    [add] = [b for b in blocks if b["kind"] == "definitions" and b["source"].endswith("add.md#h=Options")]
    assert [d["term"] for d in add["items"]] == ["--name <path>", "--copy", "-n, --dry-run"]
    assert add["items"][1]["definition"].endswith("replace links with files when they save.")  # over two lines
    assert options["store.path"].startswith("The store folder.")  # a **bold**: glossary
    assert "SKEIN_STORE" in options and "4" in options  # environment variables, exit codes
    [synopsis] = [b for b in blocks if b["kind"] == "code" and b["source"].endswith("add.md#h=Synopsis")]
    assert synopsis["code"] == "skein add [--name <path>] [--copy] [--dry-run] <file>..."
    toml = next(b for b in blocks if b["kind"] == "code" and b["language"] == "toml")
    assert '\nignore = ["*.swp", ".DS_Store"]\n' in toml["code"]
    # Front matter is not text; <details> is a subsection of its section.
    assert not any("weight:" in b["text"] for b in blocks)
    assert "skein / Global options / Why links and not copies" in {b["title"] for b in blocks}


def test_the_datasheets_give_min_typ_max_and_pin_tables_from_markdown_and_pdf(corpus):
    tables = [b for b in corpus("datasheets") if b["kind"] == "table"]
    electrical = [b for b in tables if b["columns"][-4:] == ["Min", "Typ", "Max", "Unit"]]
    pins = [b for b in tables if b["columns"] == ["Pin", "Name", "Type", "Description"]]
    ratings = [b for b in tables if b["columns"] == ["Symbol", "Parameter", "Min", "Max", "Unit"]]
    files = ("tb-120.pdf", "tb-210.md", "tb-330.md", "tb-450.md")
    for found in (electrical, pins, ratings):
        assert sorted(b["source"].split("/")[-1].split("#")[0] for b in found) == list(files)
    [pdf] = [b for b in electrical if ".pdf#" in b["source"]]
    assert pdf["source"].endswith("#page=3")
    assert pdf["headings"] == ["TB-120 USB-UART bridge board", "Electrical characteristics"]
    assert pdf["rows"][1] == {"Symbol": "IBUS", "Parameter": "Supply current", "Conditions": "3 Mbaud, both ways",
                              "Min": "", "Typ": "18", "Max": "25", "Unit": "mA"}  # fmt: skip
    assert len(pdf["rows"]) == 6


def test_the_committed_datasheet_pdf_is_what_its_script_writes(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_datasheet_pdf", REPO / "tests" / "data" / "make_datasheet_pdf.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.write(tmp_path / "tb-120.pdf")
    assert (tmp_path / "tb-120.pdf").read_bytes() == (REPO / "domains/datasheets/raw/tb-120.pdf").read_bytes()


def test_the_heating_corpus_maps_its_old_kinds_onto_structural_ones(monkeypatch):
    # Today's kinds by structure: spec/troubleshooting tables -> table, procedures -> list, prose -> section,
    # wiring -> a section with its bullet items, catalog rows -> row, Q&A -> qa.
    monkeypatch.chdir(REPO)
    blocks, counts = run("domains/heating/raw", Extract().min_chars, max_chars=0, rows=row_labels())
    assert {k for k, n in counts["blocks"].items() if n} == {"table", "list", "section", "row", "qa"}
    wiring = [b for b in blocks if b["kind"] == "section" and "Wiring" in b["title"]]
    assert wiring and all(b["items"] for b in wiring)
