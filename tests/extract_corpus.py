"""The documents and the runner the extract tests share (tests/test_extract*.py): one manual as Markdown, HTML and PDF
pages, a catalog CSV and a chat JSONL, and `extract`, which runs the stage on files written to a raw folder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stages.extract import cli
from tests.conftest import params_file

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

# The same manual as HTML: it must give the same blocks (bar the file name in `source`); its <title> names it as the
# Markdown H1 does.
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
