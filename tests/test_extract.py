"""`finetune extract`: raw documents in, one Block record per section's prose, ordered list, table, glossary, code
block, CSV row and imported conversation out (the contract is in finetune/schema.py). Kinds are structural: a heading
word or a column name never changes a block's kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from finetune.documents.corpus import run
from finetune.documents.pages import split_value_unit
from finetune.io import InputError
from finetune.schema import BLOCK_KINDS, message_problems
from stages.extract import cli
from tests.conftest import merge, params_file, repo_params

REPO = Path(__file__).resolve().parents[1]

MANUAL_MD = """\
# Acme Manual

Short intro.

## Boilers

### Specifications — B-24

| Parameter | Value | Unit |
|---|---|---|
| Rated   output | 24 | kW |
| Weight (empty) | 32 | kg |
| COP | 4.9 | – |

### Procedure — Annual service

Follow these steps:

1. Isolate the gas and electrical supplies.
2. Clean the   burner with the *brush*.

### Wiring — External controls

All controls connect to the terminal strip behind the lower cover.

- Terminal X4 pins 1-2: room thermostat, volt-free.
- Terminal X5: 230 V supply, fused at 3 A.

### Troubleshooting — B-24

| Symptom | Cause | Remedy |
|---|---|---|
| F22 low pressure | Leak or air in the system | Top up to 1.5 bar and bleed |
"""

# The same manual as HTML: it must give the same blocks (bar the file name in `source`).
MANUAL_HTML = """\
<!DOCTYPE html><html><head><title>Acme Manual</title><style>td { color: red }</style></head><body>
<h1>Acme Manual</h1><p>Short intro.</p>
<h2>Boilers</h2>
<h3>Specifications &mdash; B-24</h3>
<table><thead><tr><th>Parameter</th><th>Value</th><th>Unit</th></tr></thead><tbody>
<tr><td>Rated
    output</td><td>24</td><td>kW</td></tr>
<tr><td>Weight (empty)<td>32<td>kg
<tr><td>COP</td><td>4.9</td><td>&ndash;</td></tr>
</tbody></table>
<h3>Procedure — Annual service</h3>
<p>Follow these steps:</p>
<ol><li>Isolate the gas and electrical supplies.<li>Clean the burner with the <em>brush</em>.</ol>
<h3>Wiring — External controls</h3>
<p>All controls connect to the terminal strip behind the lower cover.
<ul>
<li>Terminal X4 pins 1-2: room thermostat, volt-free.</li>
<li>Terminal X5: 230 V supply, fused at 3 A.</li>
</ul>
<h3>Troubleshooting — B-24</h3>
<table><tr><th>Symptom</th><th>Cause</th><th>Remedy</th></tr>
<tr><td>F22 low pressure</td><td>Leak or air in the system</td><td>Top up to 1.5 bar and bleed</td></tr></table>
</body></html>
"""

CATALOG_CSV = """\
model_code,family,name,rating,unit,informal_names
CA-24C,Calora,Brenntal Calora CA-24C combi boiler,24,kW,calora 24 combi
SV-08A,Solvia,"Brenntal Solvia SV-08A heat pump, monobloc",8,kW,
"""

QA_JSONL = "\n".join(
    json.dumps(r)
    for r in [
        {
            "messages": [
                {"role": "user", "content": "What does F22 mean?"},
                {"role": "assistant", "content": "Low pressure."},
            ]
        },
        {"instruction": "Convert to bar.", "input": "1500 mbar", "output": "1.5 bar"},
        {
            "conversations": [
                {"from": "system", "value": "You are a service assistant."},
                {"from": "human", "value": "How often is the anode checked?"},
                {"from": "gpt", "value": "Every two years."},
            ]
        },
        {"instruction": "Name the Calora refrigerant.", "input": "", "output": "Calora boilers burn gas; none."},
    ]
)

PDF_PAGES = [
    ["Aquis - Specifications - AQ-200", "Rated volume: 200 L", "Standing heat loss: 1.4 kWh/24h",
     "Dimensions (H x D): 1290 x 560 mm", "Gas type: natural gas"],
    ["Aquis - Procedure - Inspecting the anode", "Inspect the anode every two years; in soft water every year.",
     "1. Switch off the immersion heater.", "2. Refit the anode with new PTFE tape and", "refill the cylinder."],
    ["Aquis - Troubleshooting - AQ-100 to AQ-500", "Symptom: H1 sensor fault", "Cause: Sensor open circuit",
     "Remedy: Replace the sensor", "Symptom: H3 overheat cut-out tripped", "Cause: Zone valve stuck open",
     "Remedy: Reset the cut-out"],
    ["Aquis - Wiring - Cylinder thermostat", "- Terminal C: common, switched live (230 V).",
     "- Terminal 1: call for heat.", "The overheat cut-out must interrupt every heat source."],
    ["Aquis - Explanation - Why 60 deg C", "Legionella bacteria multiply in water between 25 and 45 deg C",
     "and are killed within minutes at 60 deg C."],
]  # fmt: skip


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def extract(tmp_path, monkeypatch, files: dict, *args: str):
    """Write `files` under tmp_path/raw and run the command there; (result, blocks, metrics)."""
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        p = tmp_path / "raw" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):  # PDF pages, each a list of text lines
            write_pdf(p, content)
        else:
            p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    if not (tmp_path / "params.yaml").exists():
        params_file(tmp_path / "params.yaml")  # the repository's: its row conventions are the sample corpus's
    argv = ["--input", "raw", "--output", "out/blocks.jsonl", "--metrics", "out/extract.json"]
    argv += ["--rejects", "out/rejects.json", *args]  # a --rejects in args comes later and wins
    result = CliRunner().invoke(cli, argv)
    out = tmp_path / "out"
    blocks = [json.loads(line) for line in (out / "blocks.jsonl").open()] if (out / "blocks.jsonl").exists() else None
    metrics = json.loads((out / "extract.json").read_text()) if (out / "extract.json").exists() else None
    return result, blocks, metrics


def by_kind(blocks, kind):
    return [b for b in blocks if b["kind"] == kind]


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
        ("Follow these steps:", "raw/manual.md#h=Boilers/Procedure — Annual service"),
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


def test_pdf_page_without_a_text_layer_is_an_error_naming_the_page(tmp_path, monkeypatch):
    result, blocks, _ = extract(tmp_path, monkeypatch, {"scan.pdf": [PDF_PAGES[0], []]})
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith("raw/scan.pdf (page 2): no text layer")
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


def test_on_error_must_be_fail_or_skip(tmp_path, monkeypatch):
    params_file(tmp_path / "params.yaml", {"extract": {"on_error": "ignore"}})
    result, _, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV}, "--params", "params.yaml")
    assert str(result.exception) == "params.yaml: extract.on_error: input should be 'fail' or 'skip' (got 'ignore')"


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


def test_a_failed_first_run_writes_nothing(tmp_path, monkeypatch):
    result, _, _ = extract(tmp_path, monkeypatch, {"catalog.csv": CATALOG_CSV, "qa.jsonl": "{not json}\n"})
    assert isinstance(result.exception, InputError)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


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
