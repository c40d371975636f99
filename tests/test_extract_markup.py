"""`finetune extract` on Markdown and HTML: sections cut at headings into typed blocks, the same blocks from either format."""

from __future__ import annotations

from tests.conftest import params_file
from tests.extract_corpus import MANUAL_HTML, MANUAL_MD, by_kind, extract


def test_markdown_sections_become_typed_blocks(tmp_path, monkeypatch):
    result, blocks, _ = extract(tmp_path, monkeypatch, {"manual.md": MANUAL_MD})
    assert result.exit_code == 0, result.output
    assert [b["kind"] for b in blocks] == ["table", "list", "section", "table"]

    spec, proc, wiring, trouble = blocks
    assert spec["title"] == "Acme Manual / Boilers / Specifications — B-24"
    assert spec["headings"] == ["Acme Manual", "Boilers", "Specifications — B-24"]
    assert spec["source"] == "raw/manual.md#h=Boilers/Specifications — B-24"  # the H1 is left out of the location
    assert spec["columns"] == ["Parameter", "Value", "Unit"]
    assert spec["rows"][0] == {"Parameter": "Rated output", "Value": "24", "Unit": "kW"}
    assert spec["text"] == "Rated output: 24 kW\nWeight (empty): 32 kg\nCOP: 4.9"  # "–" = no unit

    assert proc["items"] == ["Isolate the gas and electrical supplies.", "Clean the burner with the brush."]
    assert proc["text"] == "1. Isolate the gas and electrical supplies.\n2. Clean the burner with the brush."
    assert proc["lead"] == "Follow these steps:"  # too short to be a section of its own, kept as the list's lead

    assert wiring["items"] == [
        "Terminal X4 pins 1-2: room thermostat, volt-free.",
        "Terminal X5: 230 V supply, fused at 3 A.",
    ]
    assert wiring["text"].startswith("All controls connect to the terminal strip")  # the intro stays in the text

    assert trouble["columns"] == ["Symptom", "Cause", "Remedy"]
    assert trouble["rows"] == [{"Symptom": "F22 low pressure", "Cause": "Leak or air in the system",
                                "Remedy": "Top up to 1.5 bar and bleed"}]  # fmt: skip
    assert (
        trouble["text"]
        == "Symptom: F22 low pressure; Cause: Leak or air in the system; Remedy: Top up to 1.5 bar and bleed"
    )


def test_prose_shorter_than_min_chars_is_dropped_and_the_knob_comes_from_params(tmp_path, monkeypatch):
    # "Short intro." and "Follow these steps:" are below the default 40 characters.
    params_file(tmp_path / "params.yaml", {"extract": {"min_chars": 5}})
    _, blocks, _ = extract(tmp_path, monkeypatch, {"manual.md": MANUAL_MD}, "--params", "params.yaml")
    prose = [b for b in by_kind(blocks, "section") if not b["items"]]
    assert [(b["text"], b["source"]) for b in prose] == [
        ("Short intro.", "raw/manual.md#h=Acme Manual"),  # under the H1 alone, the location is the H1
        # A lead-in keeps what it leads to (the steps, which are a list block too): no answer stops on its colon.
        (
            "Follow these steps:\n\n1. Isolate the gas and electrical supplies.\n2. Clean the burner with the brush.",
            "raw/manual.md#h=Boilers/Procedure — Annual service",
        ),
    ]


def test_a_section_without_prose_gives_no_prose_block_even_with_min_chars_0(tmp_path, monkeypatch):
    params_file(tmp_path / "params.yaml", {"extract": {"min_chars": 0}})
    files = {"steps.md": "## Procedure — Bleeding\n\n1. Open the vent.\n2. Close it.\n"}
    result, blocks, _ = extract(tmp_path, monkeypatch, files, "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    assert [b["kind"] for b in blocks] == ["list"]


def test_html_gives_the_same_blocks_as_markdown(tmp_path, monkeypatch):
    _, blocks, _ = extract(tmp_path, monkeypatch, {"manual.md": MANUAL_MD, "manual.html": MANUAL_HTML})

    def shape(suffix):
        return [{k: v for k, v in b.items() if k not in ("id", "source")} | {"at": b["source"].split("#")[1]}
                for b in blocks if b["source"].startswith(f"raw/manual.{suffix}#")]  # fmt: skip

    assert shape("html") == shape("md")
    assert len(shape("md")) == 4
