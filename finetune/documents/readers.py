"""One file -> blocks, per format: Markdown, HTML and PDF (documents/pdf.py) cut at headings, a scanned page
(Tesseract OCR, documents/ocr.py) as one page, a CSV row by row, a JSONL of training data line by line, plain text by paragraph.

Bad input is an InputError naming the file and its line, row or page. A bad record (line, row, page) goes to the
`reject` callback, which raises it unless the caller skips bad records (extract.on_error: skip).
"""

from __future__ import annotations

import csv
import io
import os
import re
import textwrap
import time
from pathlib import Path

from finetune.documents.chatfiles import json_blocks, jsonl_blocks
from finetune.documents.ocr import DEFAULT_OCR, OcrSettings, check_confidence, ocr_image
from finetune.documents.pages import NO_ROWS, RowLabels, page_section
from finetune.documents.plaintext import text_events
from finetune.documents.sections import (
    LEAD_IN,
    block,
    clean,
    heading_blocks,
    one_line,
    section_block,
    section_blocks,
)
from finetune.documents.textfiles import read_text
from finetune.io import InputError, log, warnings_named

FORMATS = {f".{x}": x for x in ("md", "html", "pdf", "csv", "jsonl", "txt")} | {".htm": "html", ".markdown": "md"}
FORMATS |= {".json": "json"}  # a JSON array of chat records (alpaca_data.json style)
FORMATS |= {".png": "image", ".jpg": "image", ".jpeg": "image"}  # scanned pages, read by OCR
DEFAULT_MIN_CHARS = 40  # shorter prose is a lead-in like "Follow these steps:", nothing to train on
# Front matter (YAML `---` or TOML `+++`) is metadata for a site generator, not text of the document.
FRONT_MATTER = re.compile(r"\A\ufeff?(---|\+\+\+)[ \t]*\n.*?\n\1[ \t]*(\n|\Z)", re.DOTALL)


def document_name(own: str, events: list[tuple], stem: str, not_titles: tuple[str, ...] = ()) -> str:
    """A document's name: its own metadata's (front matter `title:`, <title>), else its first heading when that is
    over every other heading, each when it is a title (not one of extract.not_titles, such as "Contents"), else its
    file name."""
    skip = {t.casefold() for t in not_titles}
    heads = [(ev[1], one_line(ev[2])) for ev in events if ev[0] == "h" and one_line(ev[2])]
    # A first heading with another at its level or above after it is one section among others ("# CONTRIBUTIONS
    # ONLY" then "# Voluptuous is …"; "# Sponsors" then "# Installation"), not the title over them all.
    first = heads[0][1] if heads and not any(level <= heads[0][0] for level, _ in heads[1:]) else ""
    # A <title> of "Contents" names no more than such a heading does.
    return next((n for n in (one_line(own), first) if n and n.strip(" .:").casefold() not in skip), stem)


def front_matter_title(text: str) -> str:
    """The `title` of a document's front matter, YAML (`---`) or TOML (`+++`); "" when it has none."""
    import tomllib

    import yaml

    m = FRONT_MATTER.match(text)
    if not m:
        return ""
    body = m[0].lstrip("\ufeff").strip()[3:-3]
    try:
        meta = yaml.safe_load(body) if m[1] == "---" else tomllib.loads(body)
    except (yaml.YAMLError, tomllib.TOMLDecodeError):
        return ""  # front matter a site generator reads its own way: the document is still read, named otherwise
    title = meta.get("title") if isinstance(meta, dict) else None
    return title if isinstance(title, str) else ""


def html_blocks(
    text: str,
    rel: str,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = 0,
    rows: RowLabels = NO_ROWS,
    not_titles: tuple[str, ...] = (),
    title: str = "",
    lines: bool = True,
) -> list[dict]:
    """Blocks of an HTML document, each with its `document` name (document_name; `title` is the front matter's).
    `lines`: whether a line of `text` is a line of the file (not of HTML rendered from Markdown)."""
    from finetune.documents.markup import TooDeep, read_html

    try:
        own, events = read_html(text)
    except TooDeep as e:
        raise InputError(rel, str(e), e.line if lines else None) from None
    name = document_name(title or own, events, Path(rel).stem, not_titles)
    return [b | {"document": name} for b in heading_blocks(rel, events, min_chars, max_chars, rows.key_value)]


def markdown_blocks(
    text: str,
    rel: str,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = 0,
    rows: RowLabels = NO_ROWS,
    not_titles: tuple[str, ...] = (),
) -> list[dict]:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(FRONT_MATTER.sub("", text))
    return html_blocks(html, rel, min_chars, max_chars, rows, not_titles, front_matter_title(text), lines=False)


def page_blocks(source: str, lines: list[str], min_chars: int, max_chars: int, rows: RowLabels) -> list[dict]:
    headings, elements = page_section(lines, Path(source.split("#")[0]).stem, rows)
    return section_blocks(source, " / ".join(headings), headings, elements, min_chars, max_chars, rows.key_value)


def pdf_blocks(
    path: Path, rel: str, min_chars: int, reject, max_chars: int, rows: RowLabels, ocr: OcrSettings
) -> list:
    with warnings_named("extract", rel, "pypdf"):
        return read_pdf(path, rel, min_chars, reject, max_chars, rows, ocr)


def read_pdf(path: Path, rel: str, min_chars: int, reject, max_chars: int, rows: RowLabels, ocr: OcrSettings) -> list:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # Besides its own errors, pypdf lets these escape from damaged files.
    broken = (PyPdfError, ValueError, KeyError, IndexError, TypeError, AttributeError, OSError)
    if path.stat().st_size == 0:
        raise InputError(rel, "empty file")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(rel, "the PDF is encrypted with a password; save a decrypted copy")
        list(reader.pages)  # a damaged page tree fails here, named as the file's error
    except broken as e:
        raise InputError(rel, f"unreadable PDF ({type(e).__name__}: {e})") from None
    from finetune.documents.pdf import pdf_document_blocks

    return pdf_document_blocks(path, rel, reader, min_chars, reject, max_chars, rows, ocr)


def image_blocks(path: Path, rel: str, min_chars: int, max_chars: int, rows: RowLabels, ocr: OcrSettings) -> list:
    """A scanned page: Tesseract's text, cut like a PDF page (source `#page=1`, so both read the same downstream)."""
    t0 = time.perf_counter()
    page = ocr_image(str(path), rel, ocr)
    log("extract", f"OCR {rel}: {len(page.lines)} lines in {time.perf_counter() - t0:.2f} s")
    if not page.lines:
        raise InputError(rel, "OCR found no text (a blank page, or a scan below ~200 dpi?)", where="page 1")
    check_confidence(page, rel, "page 1", ocr)
    return page_blocks(f"{rel}#page=1", [line.text for line in page.lines], min_chars, max_chars, rows)


def csv_blocks(text: str, rel: str, reject) -> list[dict]:
    """One `row` block per data row: what a row is for (a product, a fault, a spec) is the task file's business."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out, n, stem = [], 0, Path(rel).stem
    try:
        header = [one_line(h) for h in next(reader)]
        if not all(header) or len(set(header)) != len(header):
            raise InputError(rel, f"the header needs distinct, non-empty column names, got {header}", 1)
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            n += 1  # data rows are numbered whether kept or not, so a skipped row never renumbers the rest
            if len(row) != len(header):
                why = f"has {len(row)} fields, the header has {len(header)}"
                reject(InputError(rel, why, reader.line_num, f"row {n}"))
                continue
            record = {h: one_line(c) for h, c in zip(header, row, strict=True)}
            text_ = "\n".join(f"{h}: {v}" for h, v in record.items() if v)
            # A table's rows share one subject, the file (`aq400.csv`: "the rated volume of the aq400").
            out.append(block(f"{rel}#row={n}", "row", stem, text_, [stem], columns=header, rows=[record]))
    except csv.Error as e:
        raise InputError(rel, f"malformed CSV: {e}", reader.line_num) from None
    except StopIteration:
        raise InputError(rel, "empty file") from None
    return out


def _indent(paragraph: str) -> int:
    return min((len(ln) - len(ln.lstrip()) for ln in paragraph.splitlines() if ln.strip()), default=0)


def txt_paragraphs(text: str) -> list[tuple[int, str]]:
    """(number, text) of each paragraph; one ending on a lead-in (":", reST's "::") takes what it leads to: the next
    paragraph, fenced verbatim as code when it is indented deeper. Alone, each would be an answer that stops on its
    colon, and code with nothing to say what it is."""
    raw = re.split(r"\n(?:[ \t]*\n)+", text.strip("\n"))  # blank lines; the next line keeps its indentation
    out, n = [], 0
    while n < len(raw):
        lead, n = clean(raw[n]), n + 1
        number = n
        if lead[-1:] in tuple(LEAD_IN) and n < len(raw):
            # One paragraph only: in a man page every paragraph after an example may be indented deeper than the
            # lead (an option's description), and a code block is never cut.
            if _indent(raw[n]) > _indent(raw[number - 1]):
                body = textwrap.dedent(raw[n]).strip("\n")
                lead = f"{lead[:-1] if lead.endswith('::') else lead}\n\n```\n{body}\n```"
            else:
                lead = f"{lead}\n\n{clean(raw[n])}"
            n += 1
        out.append((number, lead))
    return out


def txt_blocks(
    text: str, rel: str, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = 0, not_titles: tuple[str, ...] = ()
) -> list[dict]:
    """A plain text file cut at the headings its layout marks (textfiles.text_events: underlined, or a man page's),
    like Markdown; with none, each paragraph is a section of its own."""
    stem = Path(rel).stem
    if events := text_events(text):
        name = document_name("", events, stem, not_titles)
        return [b | {"document": name} for b in heading_blocks(rel, events, min_chars, max_chars)]
    return [b for n, p in txt_paragraphs(text) if len(p) >= min_chars
            for b in section_block(f"{rel}#para={n}", stem, [stem], p, [], max_chars)]  # fmt: skip


def fail(error: InputError) -> None:
    raise error


def file_blocks(
    path: Path,
    min_chars: int = DEFAULT_MIN_CHARS,
    reject=fail,
    max_chars: int = 0,
    rows: RowLabels = NO_ROWS,
    not_titles: tuple[str, ...] = (),
    ocr: OcrSettings = DEFAULT_OCR,
) -> tuple[str, list]:
    """(format, blocks) of one file. A bad file raises InputError; a bad record (line, row, page) goes to `reject`,
    which raises it too unless the caller skips bad records. Sources are relative to the working directory.
    max_chars > 0 cuts a longer section into parts (0: never); `rows`: how the corpus writes table rows as lines;
    `not_titles`: first headings that do not name a document (extract.not_titles); `ocr`: how scanned pages are read."""
    rel = Path(os.path.relpath(path)).as_posix()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = " ".join(sorted(FORMATS))
        raise InputError(rel, f"unsupported file type {path.suffix or '(none)'!r} (supported: {supported})")
    if fmt == "pdf":
        return fmt, pdf_blocks(path, rel, min_chars, reject, max_chars, rows, ocr)
    if fmt == "image":
        return fmt, image_blocks(path, rel, min_chars, max_chars, rows, ocr)
    if fmt in ("jsonl", "json"):  # chat data: finetune.documents.chatfiles
        return fmt, (jsonl_blocks if fmt == "jsonl" else json_blocks)(path, rel, reject)
    text = read_text(path, rel, reject)
    if fmt == "csv":
        return fmt, csv_blocks(text, rel, reject)
    if fmt == "txt":
        return fmt, txt_blocks(text, rel, min_chars, max_chars, not_titles)
    return fmt, (markdown_blocks if fmt == "md" else html_blocks)(text, rel, min_chars, max_chars, rows, not_titles)
