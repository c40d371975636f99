"""OCR of a scanned page by Tesseract: an image file, or a PDF page without a text layer that pypdfium2 renders to
an image first (no system poppler needed). Tesseract's TSV output gives each word with its box and confidence, so a
page's lines come with where they stand and how sure Tesseract was of them.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace

from finetune.documents.sections import one_line
from finetune.io import InputError


@dataclass(frozen=True)
class OcrSettings:
    """extract.ocr and extract.min_ocr_confidence, as the readers need them."""

    languages: tuple[str, ...] = ("eng",)  # Tesseract's language codes, all installed (`tesseract --list-langs`)
    dpi: int = 300  # a PDF page is rendered at this resolution; Tesseract reads 10 pt type best at ~300 dpi
    psm: int = 3  # Tesseract's page segmentation mode: 3 = automatic (finds blocks, columns, the skew)
    min_confidence: float = 0.0  # 0-100: a page OCR'd with less is rejected (named), never kept


DEFAULT_OCR = OcrSettings()  # extract.ocr's defaults, with no confidence threshold


@dataclass
class OcrLine:
    top: float  # in pixels of the image Tesseract read
    bottom: float
    left: float
    text: str


@dataclass
class OcrPage:
    lines: list[OcrLine]
    confidence: float  # Tesseract's word confidences (0-100), averaged weighting each word by its length
    blocks: list[tuple[int, int, int, int]] = field(default_factory=list)  # (left, top, width, height) of each

    def split_margin(self) -> bool:
        """Whether Tesseract's layout cut a narrow block off beside a wider one: a numbered list's numbers read as a
        column of their own (measured: "1." alone, then the steps without their numbers, then "2 3 4" as one
        word). A real column of text is as wide as a column; this block is under a tenth of the widest."""
        widest = max((w for _, _, w, _ in self.blocks), default=0)
        return any(
            w < widest / 10
            and any(ol > left + w / 2 and ot < top + h and top < ot + oh for ol, ot, _, oh in self.blocks)
            for left, top, w, h in self.blocks
        )


def tesseract(rel: str) -> str:
    exe = shutil.which("tesseract")
    if exe is None:
        raise InputError(
            rel, "a scanned page needs OCR, but `tesseract` is not installed: apt-get install tesseract-ocr"
        )
    return exe


def ocr_image(image: str | bytes, rel: str, settings: OcrSettings, dpi: int | None = None) -> OcrPage:
    """Tesseract's lines of an image file (a path) or of PNG bytes (a rendered PDF page, whose `dpi` it is told).
    With psm 3 (automatic layout), a page whose layout cut a list's numbers off as a narrow column of their own is
    read again as one column (psm 4): automatic reads skewed scans best, one column reads such lists."""
    page = _tesseract_page(image, rel, settings, dpi)
    if settings.psm == 3 and page.split_margin():
        return _tesseract_page(image, rel, replace(settings, psm=4), dpi)
    return page


def _tesseract_page(image: str | bytes, rel: str, settings: OcrSettings, dpi: int | None) -> OcrPage:
    cmd = [tesseract(rel), "stdin" if isinstance(image, bytes) else image, "stdout"]
    cmd += ["-l", "+".join(settings.languages), "--psm", str(settings.psm)]
    if dpi:
        cmd += ["--dpi", str(dpi)]
    # One OpenMP thread: extract runs one Tesseract per core already, and on a page Tesseract's own threads cost more
    # than they save (5.2 s vs 2.1 s a page with another job on 2 cores).
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    data = image if isinstance(image, bytes) else None
    proc = subprocess.run([*cmd, "tsv"], input=data, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        said = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise InputError(rel, f"OCR failed: tesseract says {' / '.join(said[-2:]) or 'nothing'}")
    return tsv_page(proc.stdout.decode("utf-8", errors="replace"))


def tsv_page(tsv: str) -> OcrPage:
    """An OcrPage from Tesseract's TSV: one row per word (level 5) with its block, paragraph and line numbers."""
    words: dict[tuple, list[dict]] = {}
    # QUOTE_NONE: a recognised `"` is text, not a quote
    blocks = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") == "2":
            blocks.append(tuple(int(row[k]) for k in ("left", "top", "width", "height")))
        if row.get("level") != "5" or not (row.get("text") or "").strip():
            continue
        words.setdefault((row["page_num"], row["block_num"], row["par_num"], row["line_num"]), []).append(row)
    lines, weight, total = [], 0, 0.0
    for line in words.values():  # Tesseract writes them in reading order
        text = one_line(" ".join(w["text"] for w in line))
        if not text:
            continue
        top = min(int(w["top"]) for w in line)
        bottom = max(int(w["top"]) + int(w["height"]) for w in line)
        lines.append(OcrLine(top, bottom, min(int(w["left"]) for w in line), text))
        for w in line:
            if float(w["conf"]) >= 0:  # -1: no confidence (not a word Tesseract recognised)
                weight += len(w["text"])
                total += float(w["conf"]) * len(w["text"])
    return OcrPage(lines, total / weight if weight else 0.0, blocks)


def check_confidence(page: OcrPage, rel: str, where: str, settings: OcrSettings) -> None:
    """Raise InputError (naming file and page) for a page read with less confidence than extract.min_ocr_confidence:
    a poor scan's text is wrong often enough to teach the model wrong facts."""
    if page.lines and page.confidence < settings.min_confidence:
        why = (f"OCR confidence {page.confidence:.0f} is below extract.min_ocr_confidence {settings.min_confidence:g}"
               " (a blurred, skewed or low-resolution scan? rescan it at 300 dpi)")  # fmt: skip
        raise InputError(rel, why, where=where)


def ocr_pdf_page(path, n: int, rel: str, settings: OcrSettings) -> list[OcrLine]:
    """Page n of a PDF, rendered at extract.ocr.dpi and read by Tesseract: its lines, placed in PDF units (1/72 in).
    InputError naming the page when OCR fails, finds nothing or is less sure than extract.min_ocr_confidence."""
    where = f"page {n}"
    image = render_pdf_page(path, n, settings.dpi)
    low, high = image.getextrema()
    if low == high:  # one colour: nothing to read, and nothing Tesseract must be asked about
        raise InputError(rel, "a blank page: no text layer, and nothing drawn to OCR", where=where)
    png = io.BytesIO()
    image.save(png, format="PNG")
    try:
        page = ocr_image(png.getvalue(), rel, settings, settings.dpi)
    except InputError as e:
        raise InputError(e.path, e.message, where=where) from None
    if not page.lines:
        raise InputError(rel, "no text layer, and OCR found no text in what the page draws", where=where)
    check_confidence(page, rel, where, settings)
    points = 72 / settings.dpi
    return [OcrLine(ln.top * points, ln.bottom * points, ln.left * points, ln.text) for ln in page.lines]


def page_rows(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Lines Tesseract put in separate blocks but side by side on the page (a table's cells across a wide gap) as one
    row, left to right: a text layer's line holds such pieces together too, and the PDF reader expects one line per
    height on the page."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.top, ln.left)):
        last = rows[-1] if rows else None
        if last and line.top < min(ln.bottom for ln in last) - 0.5 * (line.bottom - line.top):
            last.append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda ln: ln.left) for row in rows]


def render_pdf_page(path, number: int, dpi: int):
    """Page `number` (from 1) of a PDF rendered by pypdfium2 at `dpi`, as a grayscale PIL image."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path)
    try:
        return pdf[number - 1].render(scale=dpi / 72, grayscale=True).to_pil()  # PDF units are 1/72 inch
    finally:
        pdf.close()


def pdf_page_count(path) -> int:
    """How many pages a PDF has (1 when pypdfium2 cannot tell: extract's reader names what is wrong with it)."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(path)
    except Exception:  # noqa: BLE001 - any damage is the reader's to report, with its own message
        return 1
    try:
        return max(len(pdf), 1)
    finally:
        pdf.close()
