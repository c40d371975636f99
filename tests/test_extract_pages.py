"""`finetune extract` on PDF and scanned pages: a page's heading line names its section, its lines become steps, notes and
the corpus's own row conventions (params, never code), and an unreadable page or file is one error naming it."""

from __future__ import annotations

import shutil

import pytest

from finetune.documents.pages import split_value_unit
from finetune.io import InputError
from tests.conftest import merge, params_file, repo_params
from tests.extract_corpus import CATALOG_CSV, PDF_PAGES, REPO, extract, write_pdf


def test_pdf_pages_become_blocks_by_their_heading_line(tmp_path, monkeypatch):
    result, blocks, _ = extract(tmp_path, monkeypatch, {"manual.pdf": PDF_PAGES})
    assert result.exit_code == 0, result.output
    kinds = [(b["source"], b["kind"]) for b in blocks]
    assert kinds == [
        ("raw/manual.pdf#page=1", "table"),
        ("raw/manual.pdf#page=2", "section"),
        ("raw/manual.pdf#page=2", "list"),
        ("raw/manual.pdf#page=3", "table"),
        ("raw/manual.pdf#page=4", "section"),
        ("raw/manual.pdf#page=5", "section"),
    ]
    spec, intro, proc, trouble, wiring, prose = blocks
    assert spec["title"] == "Aquis / Specifications / AQ-200"
    assert spec["headings"] == ["Aquis", "Specifications", "AQ-200"]
    assert intro["text"] == "Inspect the anode every two years; in soft water every year."
    assert spec["rows"] == [
        {"Parameter": "Rated volume", "Value": "200", "Unit": "L"},
        {"Parameter": "Standing heat loss", "Value": "1.4", "Unit": "kWh/24h"},
        {"Parameter": "Dimensions (H x D)", "Value": "1290 x 560", "Unit": "mm"},
        {"Parameter": "Gas type", "Value": "natural gas", "Unit": ""},
    ]
    assert proc["items"] == [
        "Switch off the immersion heater.",
        "Refit the anode with new PTFE tape and refill the cylinder.",
    ]
    assert trouble["rows"] == [
        {"Symptom": "H1 sensor fault", "Cause": "Sensor open circuit", "Remedy": "Replace the sensor"},
        {"Symptom": "H3 overheat cut-out tripped", "Cause": "Zone valve stuck open", "Remedy": "Reset the cut-out"},
    ]
    assert wiring["items"] == ["Terminal C: common, switched live (230 V).", "Terminal 1: call for heat."]
    assert wiring["text"].endswith("The overheat cut-out must interrupt every heat source.")
    assert prose["title"] == "Aquis / Explanation / Why 60 deg C"
    assert prose["text"] == (
        "Legionella bacteria multiply in water between 25 and 45 deg C and are killed within minutes at 60 deg C."
    )


# A corpus in conventions of its own: fault rows labelled Fault/Reason/Fix, settings as `Name: value unit` lines.
VENTRA_PAGES = [
    ["Ventra - Faults - VX-1", "Fault: E4 fan stalled", "Reason: Blocked intake", "Fix: Clear the intake grille",
     "Fault: E9 frost on the coil", "Reason: Defrost sensor open", "Fix: Replace the defrost sensor"],
    ["Ventra - Settings - VX-1", "Airflow: 120 m3/h", "Mode: eco"],
]  # fmt: skip
VENTRA = {"labelled_rows": [["Fault", "Reason", "Fix"]], "key_value_columns": ["Setting", "Level", "Unit"],
          "key_value_headings": ["Setting"]}  # fmt: skip


def test_a_corpus_in_other_row_conventions_needs_a_params_edit_not_a_code_edit(tmp_path, monkeypatch):
    params_file(tmp_path / "params.yaml", {"extract": VENTRA})
    result, blocks, _ = extract(tmp_path, monkeypatch, {"ventra.pdf": VENTRA_PAGES})
    assert result.exit_code == 0, result.output
    faults, settings = blocks
    assert faults["kind"] == settings["kind"] == "table"
    assert faults["columns"] == ["Fault", "Reason", "Fix"]
    assert faults["rows"] == [
        {"Fault": "E4 fan stalled", "Reason": "Blocked intake", "Fix": "Clear the intake grille"},
        {"Fault": "E9 frost on the coil", "Reason": "Defrost sensor open", "Fix": "Replace the defrost sensor"},
    ]
    assert settings["rows"] == [
        {"Setting": "Airflow", "Level": "120", "Unit": "m3/h"},
        {"Setting": "Mode", "Level": "eco", "Unit": ""},  # a Settings page: a value need not be a number
    ]
    assert settings["text"] == "Airflow: 120 m3/h\nMode: eco"


def test_row_labels_are_params_only_the_sample_s_labels_mean_nothing_elsewhere(tmp_path, monkeypatch):
    # The sample corpus's troubleshooting page read with Ventra's conventions: its Symptom lines are prose.
    params_file(tmp_path / "params.yaml", {"extract": VENTRA})
    trouble = next(page for page in PDF_PAGES if any(line.startswith("Symptom:") for line in page))
    _, blocks, _ = extract(tmp_path, monkeypatch, {"manual.pdf": [trouble], "ventra.pdf": VENTRA_PAGES})
    assert [b["kind"] for b in blocks if b["source"].startswith("raw/manual.pdf")] == ["section"]
    assert not any("Symptom" in b.get("columns", []) for b in blocks)


def test_row_labels_in_params_are_checked_with_one_line_naming_the_key(tmp_path):
    from finetune.params import parse

    p = merge(repo_params(), {"extract": {"labelled_rows": [["Fault"]]}})
    with pytest.raises(InputError, match=r"extract\.labelled_rows\.?.*at least two labels"):
        parse(p)
    with pytest.raises(InputError, match=r"extract\.key_value_columns.*three column names"):
        parse(merge(repo_params(), {"extract": {"key_value_columns": ["Name", "Value"]}}))


@pytest.mark.parametrize(
    "value, expected",
    [("24 kW", ("24", "kW")), ("1290 x 560 mm", ("1290 x 560", "mm")), ("4.8–24 kW", ("4.8–24", "kW")),
     ("6 bar", ("6", "bar")), ("natural gas G20", ("natural gas G20", "")), ("94 %", ("94", "%"))],
)  # fmt: skip
def test_split_value_unit_takes_the_unit_after_the_last_number(value, expected):
    assert split_value_unit(value) == expected


def test_a_blank_pdf_page_is_an_error_naming_the_page(tmp_path, monkeypatch):
    result, blocks, _ = extract(tmp_path, monkeypatch, {"scan.pdf": [PDF_PAGES[0], []]})
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith("raw/scan.pdf (page 2): a blank page: no text layer")
    assert blocks is None


def test_a_file_that_is_not_a_pdf_is_an_error_naming_it(tmp_path, monkeypatch):
    result, _, _ = extract(tmp_path, monkeypatch, {"broken.pdf": b"%PDF-1.4 this is not really a PDF"})
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith("raw/broken.pdf: unreadable PDF")


def test_an_encrypted_pdf_is_an_error_naming_it(tmp_path, monkeypatch):
    from pypdf import PdfReader, PdfWriter

    write_pdf(tmp_path / "plain.pdf", PDF_PAGES[:1])
    writer = PdfWriter(clone_from=PdfReader(tmp_path / "plain.pdf"))
    writer.encrypt("secret", algorithm="RC4-128")
    (tmp_path / "raw").mkdir()
    writer.write(tmp_path / "raw" / "locked.pdf")
    result, _, _ = extract(tmp_path, monkeypatch, {})
    assert isinstance(result.exception, InputError)
    assert str(result.exception) == "raw/locked.pdf: the PDF is encrypted with a password; save a decrypted copy"


needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


@needs_tesseract
def test_a_scanned_page_is_read_by_ocr_and_cut_like_a_pdf_page(tmp_path, monkeypatch):
    scan = (REPO / "domains" / "heating" / "raw" / "manual_scan.png").read_bytes()  # a noisy, skewed 200-dpi page
    result, blocks, _ = extract(tmp_path, monkeypatch, {"manual_scan.png": scan})
    assert result.exit_code == 0, result.output
    assert [(b["source"], b["kind"], b["title"]) for b in blocks] == [
        ("raw/manual_scan.png#page=1", "table", "Aquis / Specifications / AQ-400"),
        ("raw/manual_scan.png#page=1", "section", "Aquis / Specifications / AQ-400"),
    ]
    spec, note = blocks
    assert len(spec["rows"]) == 10
    assert spec["rows"][0] == {"Parameter": "Rated volume", "Value": "400", "Unit": "L"}
    assert spec["rows"][-1] == {"Parameter": "Dimensions (H x D)", "Value": "1690 x 750", "Unit": "mm"}
    assert note["text"].endswith("on its own 16 A circuit with a double-pole isolator.")  # two lines, one paragraph


@needs_tesseract
def test_ocr_text_follows_the_pdf_line_rules(tmp_path, monkeypatch):
    from PIL import Image, ImageDraw, ImageFont

    lines = ["Solvia - Procedure - Commissioning the SV-16A",
             "Commission the heat pump only after the heating circuit has been filled and bled.",
             "1. Check that the outdoor unit stands level on its brackets.",
             "2. Fill the heating circuit to 1.5 bar and bleed all radiators and the",
             "hydraulic module.",
             "3. Switch on the supply and enter installer code 1605."]  # fmt: skip
    img = Image.new("L", (1654, 500), 255)  # A4 width at 200 dpi
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=30)  # Pillow's own font: no font package needed
    for i, line in enumerate(lines):
        draw.text((150, 100 + 52 * i), line, font=font, fill=20)
    img.save(tmp_path / "page.jpg", dpi=(200, 200))
    _, blocks, _ = extract(tmp_path, monkeypatch, {"scan.jpg": (tmp_path / "page.jpg").read_bytes()})
    assert [b["kind"] for b in blocks] == ["section", "list"]
    assert blocks[1]["items"] == [
        "Check that the outdoor unit stands level on its brackets.",
        "Fill the heating circuit to 1.5 bar and bleed all radiators and the hydraulic module.",
        "Switch on the supply and enter installer code 1605.",
    ]


def test_without_tesseract_a_scan_is_an_error_naming_it_and_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    result, blocks, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV, "scan.png": b"\x89PNG"})
    assert str(result.exception) == (
        "raw/scan.png: a scanned page needs OCR, but `tesseract` is not installed: apt-get install tesseract-ocr"
    )
    assert blocks is None
