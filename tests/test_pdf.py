"""A PDF read as a document (issue 19, item 6): running headers, footers and page numbers out, headings from the
outline or the type, sections across page boundaries, contents pages never a subject, ruled tables, and the
document's own name first in every block's headings. Every PDF here is built by the test with fpdf2."""

from __future__ import annotations

from pathlib import Path

from finetune.documents.pdf import Line, strip_running_lines
from finetune.documents.readers import file_blocks

PROSE = (
    "The pump draws water from the lower tank and lifts it to the header tank through the riser. It runs only "
    "while the float switch is closed, so the lower tank never runs dry."
)


def guide(path: Path, *, outline: bool = False, title: str | None = None, contents: bool = False) -> Path:
    """A three-section guide over three pages: a running header naming the chapter with the page number, a footer
    with the page number, headings bold and bigger than the text; the second section runs onto page 2, the third is
    on page 3. `outline`: bookmarks for the headings; `title`: the metadata Title; `contents`: a contents page."""
    from fpdf import FPDF

    class Guide(FPDF):
        def header(self):
            self.set_font("Helvetica", size=9)
            self.cell(0, 5, f"Pump guide: operation {self.page_no()}", new_x="LMARGIN", new_y="NEXT")
            self.ln(4)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 5, str(self.page_no()), align="C")

    pdf = Guide()
    if title is not None:
        pdf.set_title(title)

    def heading(text: str):
        if outline:
            pdf.start_section(text)
        pdf.set_font("Helvetica", "B", 15)
        pdf.cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)

    def para(text: str):
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    pdf.set_font("Helvetica", size=10)
    if contents:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 15)
        pdf.cell(0, 9, "Contents", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        for name, page in (("Priming the pump", 2), ("Wiring the float switch", 2), ("Winter storage", 3)):
            pdf.cell(0, 6, f"{name} {'.' * 40} {page}", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 6, "Index of parts and spares", new_x="LMARGIN", new_y="NEXT")  # an entry without its leader
    pdf.add_page()
    heading("Priming the pump")
    para(PROSE)
    para("Fill the pump housing with clean water before the first start; a dry start burns the shaft seal.")
    heading("Wiring the float switch")
    para("The float switch breaks the pump's live conductor. " * 3)
    pdf.add_page()
    para("Route the float cable away from the riser so the float hangs free in every water level it must sense.")
    pdf.add_page()
    heading("Winter storage")
    para("Drain the housing and the riser before the first frost, and store the pump indoors on its side.")
    pdf.output(str(path))
    return path


def blocks_of(path: Path, min_chars: int = 20) -> list[dict]:
    rejects = []
    _, blocks = file_blocks(path, min_chars, rejects.append)
    assert rejects == []
    return blocks


def by_heading(blocks) -> dict[str, str]:
    return {b["headings"][-1]: b["text"] for b in blocks}


def test_headings_in_a_bigger_bold_type_cut_sections_across_pages_without_running_headers_or_page_numbers(tmp_path):
    blocks = blocks_of(guide(tmp_path / "pump.pdf"))
    assert [b["headings"] for b in blocks] == [
        ["pump", "Priming the pump"],  # no metadata, outline or title page: the file names the document
        ["pump", "Wiring the float switch"],
        ["pump", "Winter storage"],
    ]
    assert [b["source"].rsplit("/", 1)[-1] for b in blocks] == [
        "pump.pdf#page=1",
        "pump.pdf#page=1",
        "pump.pdf#page=3",
    ]
    sections = by_heading(blocks)
    # The section that runs onto the next page keeps its text from both, and nothing of the header or footer.
    assert sections["Wiring the float switch"].startswith("The float switch breaks")
    assert sections["Wiring the float switch"].endswith("in every water level it must sense.")
    for b in blocks:
        assert "Pump guide" not in b["text"] and not any(line.strip().isdigit() for line in b["text"].splitlines())
    # Two paragraphs stay two: the line spacing between them is wider than within one.
    assert sections["Priming the pump"] == PROSE + "\n\n" + (
        "Fill the pump housing with clean water before the first start; a dry start burns the shaft seal."
    )


def test_the_outline_names_the_sections_and_the_metadata_title_names_the_document(tmp_path):
    blocks = blocks_of(guide(tmp_path / "pump.pdf", outline=True, title="Lift pump LP-2 service guide"))
    assert [b["title"] for b in blocks] == [
        "Lift pump LP-2 service guide / Priming the pump",
        "Lift pump LP-2 service guide / Wiring the float switch",
        "Lift pump LP-2 service guide / Winter storage",
    ]


def test_a_metadata_title_that_is_a_file_name_is_not_the_document_s_name(tmp_path):
    blocks = blocks_of(guide(tmp_path / "pump.pdf", title="pump_v3_final.docx"))
    assert {b["headings"][0] for b in blocks} == {"pump"}


def test_a_contents_page_is_never_a_subject(tmp_path):
    blocks = blocks_of(guide(tmp_path / "pump.pdf", contents=True))
    assert not any("...." in b["text"] for b in blocks)
    assert [b["headings"][-1] for b in blocks] == ["Priming the pump", "Wiring the float switch", "Winter storage"]


def test_a_ruled_table_is_a_table_block_with_its_header_and_rows(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, "Ratings", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, "Limits for continuous duty at an ambient temperature of 25 deg C.")
    rows = [["Quantity", "Min", "Max", "Unit"], ["Head", "2", "9", "m"], ["Flow at 3 m head", "", "40", "l/min"]]
    with pdf.table() as table:  # fpdf2 rules every cell: a table pdfplumber's finder reads from its lines
        for cells in rows:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.output(str(tmp_path / "ratings.pdf"))
    [intro, ratings] = blocks_of(tmp_path / "ratings.pdf")
    assert (intro["kind"], intro["headings"]) == ("section", ["ratings", "Ratings"])
    assert ratings["kind"] == "table" and ratings["headings"] == ["ratings", "Ratings"]
    assert ratings["columns"] == ["Quantity", "Min", "Max", "Unit"]
    assert ratings["rows"] == [
        {"Quantity": "Head", "Min": "2", "Max": "9", "Unit": "m"},
        {"Quantity": "Flow at 3 m head", "Min": "", "Max": "40", "Unit": "l/min"},
    ]


def line(page: int, top: float, text: str, size: float = 10) -> Line:
    return Line(page, top, top + size, size, False, [(50.0, text)])


def test_running_lines_are_page_numbers_lines_carrying_the_page_number_and_lines_repeated_on_most_pages():
    pages = [
        [line(n, 30, f"Chapter 2: Wiring {n + 4}"), line(n, 80, f"Body text of page {n}."), line(n, 90, "More text."),
         line(n, 100, f"The end of the text of page {n}."), line(n, 800, "ACME confidential")]
        for n in range(1, 6)
    ]  # fmt: skip
    pages[0].insert(0, line(1, 20, "vi"))
    pages[0].insert(2, line(1, 40, "1 pump per tank, 2 tanks per riser."))  # a number, not at the pages' offset
    pages[1].insert(1, line(2, 50, "2 Wiring the pump", size=15))  # a numbered heading: bigger, so it stays
    kept = strip_running_lines(pages)
    assert [[ln.text for ln in page] for page in kept][:2] == [
        [
            "1 pump per tank, 2 tanks per riser.",
            "Body text of page 1.",
            "More text.",
            "The end of the text of page 1.",
        ],
        ["2 Wiring the pump", "Body text of page 2.", "More text.", "The end of the text of page 2."],
    ]


def test_the_same_header_on_two_pages_only_is_kept_too_few_pages_to_tell():
    pages = [[line(n, 30, "Setup"), line(n, 80, f"Body text of page {n}.")] for n in (1, 2)]
    assert [[ln.text for ln in page] for page in strip_running_lines(pages)] == [
        ["Setup", "Body text of page 1."],
        ["Setup", "Body text of page 2."],
    ]


def aligned(path: Path, rows: list[list[str]]) -> Path:
    """A page with a heading, a line of prose, and `rows` drawn as separate pieces of text in fixed columns (no
    rules): a table only its layout shows."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, "Fuses", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 6, "Replace a fuse only with one of the same rating.", new_x="LMARGIN", new_y="NEXT")
    for cells in rows:
        y = pdf.get_y()
        for x, cell in zip((10, 50, 90), cells, strict=True):
            pdf.set_xy(x, y)
            pdf.cell(30, 6, cell)
        pdf.ln(6)
    pdf.output(str(path))
    return path


def test_columns_without_rules_are_a_table_with_two_rows_and_text_with_one(tmp_path):
    header, f1, f2 = ["Fuse", "Rating", "Circuit"], ["F1", "3.15 A", "Pump motor"], ["F2", "1 A", "Controller"]
    [_, table] = blocks_of(aligned(tmp_path / "two.pdf", [header, f1, f2]), 0)
    assert (table["kind"], table["columns"]) == ("table", header)
    assert table["rows"] == [dict(zip(header, f1, strict=True)), dict(zip(header, f2, strict=True))]
    [prose] = blocks_of(aligned(tmp_path / "one.pdf", [header, f1]), 0)
    assert prose["kind"] == "section"
    assert prose["text"].endswith("Fuse Rating Circuit F1 3.15 A Pump motor")
