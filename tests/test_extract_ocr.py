"""OCR in extract: a PDF page without a text layer is rendered and read like a scanned image, page by page beside the
text pages; a page Tesseract reads with less than extract.min_ocr_confidence is rejected naming file and page."""

from __future__ import annotations

import json
import shutil

import pytest

from finetune.documents.ocr import tsv_page
from tests.conftest import params_file
from tests.extract_corpus import PDF_PAGES, REPO, extract, write_pdf

SCAN = REPO / "domains" / "heating" / "raw" / "manual_scan.png"  # a noisy, skewed 200-dpi page
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def scanned_pdf(path, pages: int = 1) -> None:
    """An image-only PDF: the heating scan, `pages` times, as a scanner writes one (no text layer)."""
    from PIL import Image

    page = Image.open(SCAN).convert("L")
    page.save(path, save_all=True, append_images=[page] * (pages - 1), resolution=200)


def mixed_pdf(tmp_path, text_pages: int) -> None:
    """raw/mixed.pdf: `text_pages` pages with a text layer, then one scanned page (an image, no text layer)."""
    from pypdf import PdfWriter

    write_pdf(tmp_path / "text.pdf", PDF_PAGES[:text_pages])
    scanned_pdf(tmp_path / "scan.pdf")
    writer = PdfWriter()
    for part in ("text.pdf", "scan.pdf"):
        writer.append(tmp_path / part)
    (tmp_path / "raw").mkdir()
    writer.write(tmp_path / "raw" / "mixed.pdf")


def test_tesseract_tsv_makes_lines_in_reading_order_and_a_length_weighted_confidence():
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t800\t600\t-1\t",  # the page itself: no word
        "5\t1\t1\t1\t1\t1\t100\t50\t80\t20\t90\tRated",
        "5\t1\t1\t1\t1\t2\t190\t52\t90\t20\t60\tvolume:",
        "5\t1\t1\t1\t2\t1\t100\t90\t40\t20\t-1\t ",
        '5\t1\t1\t1\t2\t2\t100\t90\t40\t20\t30\t"40"',
    ]
    page = tsv_page("\n".join([header, *rows]))
    assert [(ln.text, ln.top, ln.bottom, ln.left) for ln in page.lines] == [
        ("Rated volume:", 50, 72, 100),
        ('"40"', 90, 110, 100),
    ]
    assert page.confidence == pytest.approx((5 * 90 + 7 * 60 + 4 * 30) / 16)


@needs_tesseract
def test_an_image_only_pdf_is_read_by_ocr_page_by_page(tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    scanned_pdf(tmp_path / "raw" / "scan.pdf", pages=2)
    result, blocks, metrics = extract(tmp_path, monkeypatch, {})
    assert result.exit_code == 0, result.output
    assert metrics["files"]["pdf"] == 1
    tables = [b for b in blocks if b["kind"] == "table"]
    assert {b["title"] for b in tables} == {"Aquis / Specifications / AQ-400"}
    assert tables[0]["rows"][0] == {"Parameter": "Rated volume", "Value": "400", "Unit": "L"}


@needs_tesseract
def test_a_pdf_of_text_pages_and_a_scanned_page_reads_each_its_own_way(tmp_path, monkeypatch):
    mixed_pdf(tmp_path, text_pages=2)
    result, blocks, _ = extract(tmp_path, monkeypatch, {})
    assert result.exit_code == 0, result.output
    pages = [(b["source"].split("#")[1], b["title"], b["text"]) for b in blocks]
    assert any(p == "page=1" and "Standing heat loss" in t for p, _, t in pages)  # page 1's text layer
    # page 3, by OCR: its first line heads it, as on a scanned image
    assert any(p == "page=3" and h.endswith("AQ-400") and "Rated volume: 400 L" in t for p, h, t in pages)


@needs_tesseract
@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_a_page_read_with_too_little_confidence_is_rejected_naming_file_and_page(tmp_path, monkeypatch, on_error):
    params_file(tmp_path / "params.yaml", {"extract": {"min_ocr_confidence": 99.5, "on_error": on_error}})
    mixed_pdf(tmp_path, text_pages=1)
    (tmp_path / "raw" / "scan.png").write_bytes(SCAN.read_bytes())
    result, blocks, _ = extract(tmp_path, monkeypatch, {})
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert rejects[0]["path"] == "raw/mixed.pdf" and rejects[0]["page"] == 2
    assert (
        rejects[0]["rule"].startswith("OCR confidence ")
        and "below extract.min_ocr_confidence 99.5" in rejects[0]["rule"]
    )
    if on_error == "skip":  # the text page is kept, the scanned page and the scanned image are not
        assert result.exit_code == 0, result.output
        assert {b["source"].split("#")[0] for b in blocks} == {"raw/mixed.pdf"}
        assert [(r["path"], r["page"], r["skipped"]) for r in rejects] == [
            ("raw/mixed.pdf", 2, "record"),
            ("raw/scan.png", 1, "file"),
        ]
    else:
        assert str(result.exception).startswith("raw/mixed.pdf (page 2): OCR confidence ")
        assert blocks is None


def test_a_narrow_block_beside_a_wide_one_is_a_split_margin_and_two_columns_are_not():
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"

    def page(*blocks):
        rows = [f"2\t1\t{n}\t0\t0\t0\t{left}\t{top}\t{w}\t{h}\t-1\t" for n, (left, top, w, h) in enumerate(blocks)]
        return tsv_page("\n".join([header, *rows]))

    # a list's numbers (37 px wide) beside its steps (1767 px), as Tesseract's automatic layout cut a clean page
    assert page((300, 310, 942, 45), (334, 567, 1767, 116), (302, 567, 37, 248)).split_margin()
    assert not page((300, 300, 900, 2000), (1300, 300, 900, 2000)).split_margin()  # two columns of text
    assert not page((300, 310, 942, 45), (302, 900, 37, 40)).split_margin()  # a page number under the text
