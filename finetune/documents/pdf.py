"""A PDF as a document, not as pages: its lines read by pdfplumber with their font, running headers, footers and page
numbers removed, a table of contents left out, cut into sections at its headings across page boundaries, then the
same section elements and blocks as every other reader (documents.pages.page_elements, documents.sections).

Headings come from the outline (bookmarks) where there is one, plus any smaller headings below its deepest level;
else from the type: lines bigger than the body text, or wholly bold at its size. A PDF with neither has one section
per page, its first line the heading (as OCR'd pages). A page without a text layer (a scan) is rendered and read by
OCR (documents/ocr.py), page by page. Ruled tables come from pdfplumber's table finder, other tables
from where their text stands (pages.pdf_lines). The document's name (metadata Title, the outline's one root, a title
larger than any heading on page 1, the first part every heading shares, else the file name) leads each block's
headings, as a Markdown file's H1 does. Why pdfplumber: it gives each character's font and size and finds ruled
tables, which pypdf's text extraction does not; pypdf still opens the file (its errors name what is wrong) and reads
the metadata and outline.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from finetune.documents.ocr import DEFAULT_OCR, OcrSettings, ocr_pdf_page, page_rows
from finetune.documents.pages import RowLabels, page_elements, pdf_lines
from finetune.documents.sections import one_line, section_blocks
from finetune.documents.textfiles import MAX_LINE_BYTES
from finetune.io import InputError

# A page number alone on a line: "12", "- 12 -", "xiv".
_PAGE_NUMBER = re.compile(r"[-–—(\s]*(\d{1,4}|[ivxlcdm]{1,7})[-–—)\s]*", re.IGNORECASE)
_EDGE_NUMBER = re.compile(r"^(\d{1,4})\b|\b(\d{1,4})$")
# A table of contents or index entry: a dot leader, then a page number (".....12", ". . . . 12").
_LEADER = re.compile(r"(?:\.\s?){4,}\s*\d+|…\s*\d+")
_BOLD = re.compile(r"bold|black|heavy|semibold|demi|\bcmbx?\d|\+cmbx?\d", re.IGNORECASE)
_HEADING_PARTS = re.compile(r"\s+[-–—]\s+")  # spaced dashes only: model codes like AQ-200 keep theirs
_FILE_NAME = re.compile(r"\.[A-Za-z0-9]{1,5}$|[/\\]")
COLUMN_GAP = 1.0  # a gap between words wider than this many font sizes separates two cells of a row
BIGGER = 1.15  # a line this many times the body text's size or more is a heading (TeX's 12 pt code beside its
# 10.95 pt text is not: 1.10)
PARAGRAPH_GAP = 1.3  # a line spacing this many times the usual one starts a paragraph
# A table found by where its text stands needs this many rows below its header: a header and one row are as often
# two lines of a code listing that happen to align (a file format's field layout in a spec).
MIN_LAYOUT_ROWS = 2
EDGE_LINES = 2  # lines at the top and at the bottom of a page that may be a running header or footer


@dataclass
class Line:
    page: int  # from 1
    top: float
    bottom: float
    size: float
    bold: bool
    pieces: list[tuple[float, str]]  # (x, text) of each run of words, runs separated by a column gap
    level: int = 0  # heading level (1 the highest), 0 for body text

    @property
    def text(self) -> str:
        return one_line(" ".join(t for _, t in self.pieces))


def _lines(page, n: int) -> tuple[list[Line], list[tuple[int, float, tuple]]]:
    """A page's text lines outside its ruled tables, and those tables as (page, top, ("table", header, rows))."""
    tables = []
    boxes = []
    for t in page.find_tables():
        cells = [[one_line(c or "") for c in row] for row in t.extract()]
        if len(cells) >= 2 and max(len(r) for r in cells) >= 2:
            tables.append((n, t.bbox[1], ("table", cells[0], cells[1:])))
            boxes.append(t.bbox)

    def outside(obj) -> bool:
        x, y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

    text = page.filter(lambda o: o.get("object_type") != "char" or outside(o)) if boxes else page
    # Tolerances relative to the font size: TeX's PDFs have no space characters, only gaps, some of them narrower
    # than pdfplumber's fixed 3 pt default (which glued "Sharedmime-infoDatabase" together).
    words = text.extract_words(x_tolerance_ratio=0.15, extra_attrs=["fontname", "size"])
    rows: list[list[dict]] = []
    for w in sorted(words, key=lambda w: (w["top"], w["x0"])):
        if rows and w["top"] - rows[-1][0]["top"] <= 0.5 * min(w["size"], rows[-1][0]["size"]):
            rows[-1].append(w)
        else:
            rows.append([w])
    out = []
    for row in rows:
        row.sort(key=lambda w: w["x0"])
        pieces: list[list] = []
        for prev, w in zip([None, *row], row, strict=False):
            if prev is None or w["x0"] - prev["x1"] > COLUMN_GAP * w["size"]:
                pieces.append([w["x0"], w["text"]])
            else:
                pieces[-1][1] += " " + w["text"]
        sizes = Counter()
        for w in row:
            sizes[round(w["size"], 1)] += len(w["text"])
        out.append(Line(n, min(w["top"] for w in row), max(w["bottom"] for w in row), sizes.most_common(1)[0][0],
                        all(_BOLD.search(w["fontname"]) for w in row), [(x, t) for x, t in pieces]))  # fmt: skip
    return out, tables


def strip_running_lines(pages: list[list[Line]]) -> list[list[Line]]:
    """Pages without their running headers and footers: lines at a page's top or bottom that are a page number
    alone, that carry the page's number at an offset most pages share ("Chapter 4: Function reference 20" on page
    23), or that repeat word for word at the edge of most pages."""
    n = len(pages)
    sizes = Counter(line.size for lines in pages for line in lines)
    body = sizes.most_common(1)[0][0] if sizes else 0
    # Running lines are never bigger than the body text: a chapter's "1 Introduction" at the top of its page, or
    # the title page's title that the headers repeat, stay.
    edges = [[line for line in lines[:EDGE_LINES] + lines[-EDGE_LINES:] if line.size <= body] for lines in pages]
    texts = Counter(t for edge in edges for t in {line.text for line in edge})
    offsets = Counter()
    for page, edge in enumerate(edges, 1):
        found = {int(m[1] or m[2]) - page for line in edge if (m := _EDGE_NUMBER.search(line.text))}
        offsets.update(found)
    offset, support = offsets.most_common(1)[0] if offsets else (None, 0)
    enough = max(3, n // 2)

    def running(line: Line, page: int) -> bool:
        if line.size > body:
            return False
        if _PAGE_NUMBER.fullmatch(line.text):
            return True
        if support >= enough and (m := _EDGE_NUMBER.search(line.text)) and int(m[1] or m[2]) - page == offset:
            return True
        return n >= 3 and texts[line.text] >= enough

    out = []
    for page, lines in enumerate(pages, 1):
        lines = list(lines)
        for _ in range(EDGE_LINES):
            if lines and running(lines[0], page):
                lines.pop(0)
            if lines and running(lines[-1], page):
                lines.pop()
        out.append(lines)
    return out


def _norm(text: str) -> str:
    return re.sub(r"\W+", "", text).casefold()


def outline_entries(reader) -> list[tuple[int, str, int]]:
    """(level from 1, title, page from 1) of each outline entry in order; [] without an outline."""
    out = []

    def walk(items, level):
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1
            except Exception:  # noqa: BLE001 - an entry pointing nowhere (a destination gone missing) heads nothing
                page = 0
            out.append((level, one_line(str(item.title or "")), page))

    try:
        walk(reader.outline, 1)
    except Exception:  # noqa: BLE001 - a damaged outline is no reason to lose the text: the type finds headings
        return []
    return [e for e in out if e[1] and e[2] > 0]


def mark_headings(lines: list[Line], outline: list[tuple[int, str, int]], body: float, title_size: float) -> None:
    """Set each heading line's level: the outline's entries where it has them, and lines in a bigger type than the
    body's (or wholly bold at its size) below the outline's smallest heading, or everywhere without an outline."""
    matched_sizes = []
    start = 0
    for level, title, page in outline:
        want = _norm(title)
        for i in range(start, len(lines)):
            line = lines[i]
            if line.page < page:
                continue
            if line.page > page + 1:
                break
            have = _norm(line.text)
            if want and want in have and len(have) <= len(want) + 12:
                line.level = level
                matched_sizes.append(line.size)
                start = i + 1
                break
    depth = max((line.level for line in lines), default=0)
    ceiling = min(matched_sizes) if matched_sizes else title_size

    def candidate(line: Line) -> bool:
        bigger = line.size >= body * BIGGER
        return (
            (bigger or line.bold)
            and line.size < ceiling
            and len(line.text) <= 150
            and any(c.isalpha() for c in line.text)
        )

    sizes = sorted({line.size for line in lines if not line.level and candidate(line)}, reverse=True)
    for line in lines:
        if not line.level and candidate(line):
            line.level = depth + 1 + sizes.index(line.size)


def document_name(meta_title: str, outline, lines: list[Line], title_size: float, stem: str) -> str:
    """The PDF's own name: its metadata Title when that is a real title, the outline's one root, the title on page
    1, the first part every heading shares, else the file name."""
    meta = one_line(meta_title or "")
    if meta and not _FILE_NAME.search(meta) and meta.casefold() != stem.casefold():
        return meta
    if len(roots := [title for level, title, _ in outline if level == 1]) == 1:
        return roots[0]
    if title_size and (title := " ".join(line.text for line in lines if line.size == title_size)):
        return title
    firsts = {_HEADING_PARTS.split(line.text)[0] for line in lines if line.level}
    multi = all(len(_HEADING_PARTS.split(line.text)) > 1 for line in lines if line.level)
    if len(firsts) == 1 and multi:
        return firsts.pop()
    return stem


def _paragraphs(items: list) -> list[list]:
    """The items of a section (lines, ruled tables) as paragraphs of pdf_lines' items (text lines, layout tables):
    a table found by its layout may hold rows further apart than a paragraph gap, so pdf_lines reads each run of
    lines whole, and the gaps between the lines it leaves as text cut the paragraphs."""
    pitches = Counter(
        round(b.top - a.top) for a, b in pairwise(items)
        if isinstance(a, Line) and isinstance(b, Line) and a.page == b.page
    )  # fmt: skip
    pitch = pitches.most_common(1)[0][0] if pitches else 0
    runs: list[list] = []
    for item in items:
        if isinstance(item, tuple) or not runs or isinstance(runs[-1][0], tuple):
            runs.append([item])
        else:
            runs[-1].append(item)
    chunks: list[list] = []
    for run in runs:
        if isinstance(run[0], tuple):
            chunks.append(run)
            continue
        # Each line its own y, page after page, so pdf_lines never merges two lines or reorders them.
        fragments = [(x, -(line.page * 10_000 + line.top), t) for line in run for x, t in line.pieces]
        at, prev = 0, None
        for el in pdf_lines(fragments):
            if isinstance(el, tuple) and len(el[2]) >= MIN_LAYOUT_ROWS:
                chunks.append([el])
                prev = None
                continue
            if isinstance(el, tuple):  # too few rows to tell a table from aligned lines of text: text it stays
                if prev is None:
                    chunks.append([])
                chunks[-1] += [" ".join(c for c in row if c) for row in [el[1], *el[2]]]
                continue
            while at < len(run) - 1 and run[at].text != el:  # lines a layout table took
                at += 1
            line = run[min(at, len(run) - 1)]  # a line pdf_lines joined to the one above: past the end
            gap = line.top - prev.top if prev is not None and prev.page == line.page else 0
            if prev is None or (pitch and gap > PARAGRAPH_GAP * pitch):
                chunks.append([])
            chunks[-1].append(el)
            prev, at = line, at + 1
    return chunks


def section_elements(items: list, specs_page: bool, rows: RowLabels) -> list[tuple]:
    """The elements of a section's lines and tables; a list or table a paragraph gap cut in two is one again."""
    out: list[tuple] = []
    for chunk in _paragraphs(items):
        for el in page_elements(chunk, specs_page, rows):
            last = out[-1] if out else None
            if last and el[0] in ("ol", "ul") and last[0] == el[0]:
                out[-1] = (el[0], last[1] + el[1], last[2] + el[2])
            elif last and el[0] == "table" and last[0] == "table" and last[1] == el[1]:
                out[-1] = ("table", last[1], last[2] + el[2])
            else:
                out.append(el)
    return out


def document_blocks(
    pages: list[list[Line]],
    tables: list[tuple[int, float, tuple]],
    outline: list[tuple[int, str, int]],
    meta_title: str,
    rel: str,
    min_chars: int,
    max_chars: int,
    rows: RowLabels,
) -> list[dict]:
    """Blocks of a whole PDF from its pages' lines and tables (pure: every reading of the file is done)."""
    stem = Path(rel).stem
    pages = strip_running_lines(pages)
    lines = [line for page in pages for line in page if not _LEADER.search(line.text)]  # no table of contents
    # A section that was mostly contents or index entries is what is left of a contents page: no subject either.
    entries = Counter(line.page for page in pages for line in page if _LEADER.search(line.text))
    if not lines and not tables:
        return []
    sizes = Counter()
    for line in lines:
        sizes[line.size] += len(line.text)
    body = sizes.most_common(1)[0][0] if sizes else 0
    biggest = max(sizes, default=0)
    # A title: one size, larger than all others, used on page 1 only (a title page's "Libtasn1"), above headings
    # of a smaller size (else it is the one heading size of a one-page document).
    on_first_page = all(line.page == 1 for line in lines if line.size == biggest)
    headings_below = any(body < size < biggest for size in sizes) or any(
        line.bold and line.size < biggest for line in lines
    )
    title_size = biggest if biggest > body and on_first_page and headings_below else 0
    mark_headings(lines, outline, body, title_size or float("inf"))
    by_outline = any(line.level for line in lines) and bool(outline)
    if not any(line.level for line in lines):  # no outline, one type: each page's first line heads it
        for page in sorted({line.page for line in lines}):
            first = next(line for line in lines if line.page == page)
            if not any(n == page and top < first.top for n, top, _ in tables):
                first.level = 1
    name = document_name(meta_title, outline, lines, title_size, stem)
    items = sorted(
        [*((line.page, line.top, line) for line in lines if line.size != title_size or not title_size), *tables],
        key=lambda t: (t[0], t[1]),
    )
    out, stack, body_items, start = [], [], [], 1

    def flush():
        spanned = {item.page for item in body_items if isinstance(item, Line)}
        if sum(entries[p] for p in spanned) > len(body_items):
            body_items.clear()
        if not body_items:
            return
        parts = [p for _, ps in stack for p in ps]
        headings = parts if parts and parts[0] == name else [name, *parts]
        own = stack[-1][1] if stack else [name]
        specs = rows.key_value_page(own[1] if len(own) > 1 else own[0])
        elements = section_elements(body_items, specs, rows)
        where = f"{rel}#page={start}"
        out.extend(section_blocks(where, " / ".join(headings), headings, elements, min_chars, max_chars,
                                  rows.key_value))  # fmt: skip
        body_items.clear()

    prev_heading = None
    for page, _, item in items:
        if isinstance(item, Line) and item.level:
            wrapped = prev_heading is not None and prev_heading.page == item.page
            if (
                wrapped
                and not body_items
                and prev_heading.level == item.level
                and item.top - prev_heading.bottom < item.size
            ):
                stack[-1] = (item.level, _split(f"{prev_heading.text} {item.text}", by_outline))  # a wrapped heading
                prev_heading = Line(item.page, item.top, item.bottom, item.size, item.bold,
                                    [(0, f"{prev_heading.text} {item.text}")], item.level)  # fmt: skip
                continue
            flush()
            stack = [h for h in stack if h[0] < item.level] + [(item.level, _split(item.text, by_outline))]
            start, prev_heading = page, item
            continue
        if not body_items and not stack:
            start = page
        body_items.append(item)
        prev_heading = None
    flush()
    return out


def _split(text: str, by_outline: bool) -> list[str]:
    # An outline names its own levels; a heading line in the type may hold several ("Aquis - Procedure - Descaling").
    return [text] if by_outline else [p for p in _HEADING_PARTS.split(text) if p]


# pdfminer decompresses and lays out whatever a page draws, with no limit: a few kilobytes of PDF inflating to
# 200 MB of text operators took minutes and GBs. A real page's content stream is tens of kilobytes (a scanned page
# draws one image, which is not in it); pypdf reads it within its own decompression limit, or raises.
MAX_PAGE_CONTENT = 5_000_000


def _content_bytes(reader, n: int) -> int:
    contents = reader.pages[n - 1].get_contents()
    return len(contents.get_data()) if contents is not None else 0


def pdf_document_blocks(path: Path, rel: str, reader, min_chars: int, reject, max_chars: int, rows: RowLabels,
                        ocr: OcrSettings = DEFAULT_OCR) -> list:  # fmt: skip
    """Blocks of a PDF pypdf has opened (`reader`): its pages read by pdfplumber, a page without a text layer by OCR
    (`ocr`). A page that cannot be read goes to `reject` naming it."""
    import pdfplumber

    try:
        meta_title = str((reader.metadata or {}).get("/Title") or "")
    except Exception:  # noqa: BLE001 - a damaged Info dictionary: the name comes from the text instead
        meta_title = ""
    outline = outline_entries(reader)
    pages, tables, scanned = [], [], []
    try:
        pdf = pdfplumber.open(path)
    except Exception as e:  # noqa: BLE001 - pdfminer raises many types on damaged files, all one bad file to a user
        raise InputError(rel, f"unreadable PDF ({type(e).__name__}: {e})") from None
    with pdf:
        for n, page in enumerate(pdf.pages, 1):
            try:
                oversized = _content_bytes(reader, n) > MAX_PAGE_CONTENT
                lines, found = ([], []) if oversized else _lines(page, n)
            except Exception as e:  # noqa: BLE001 - as above: one damaged page, named, not a traceback
                reject(InputError(rel, f"cannot read the text layer ({type(e).__name__}: {e})", where=f"page {n}"))
                lines, found = [], []
            else:
                if oversized:
                    why = f"its drawing commands are over {MAX_PAGE_CONTENT:,} bytes: no page of a document is"
                    reject(InputError(rel, why, where=f"page {n}"))
                elif not lines and not found:  # a scanned page: rendered, read by OCR, its lines sized below
                    try:
                        found_rows = page_rows(ocr_pdf_page(path, n, rel, ocr))
                        lines = [Line(n, r[0].top, max(o.bottom for o in r), 0.0, False, [(o.left, o.text) for o in r])
                                 for r in found_rows]  # fmt: skip
                    except InputError as e:
                        reject(e)
                    scanned += lines
                elif any(len(line.text) > MAX_LINE_BYTES for line in lines):  # every format's line limit
                    why = f"a line longer than {MAX_LINE_BYTES:,} characters: generated data, not a document"
                    reject(InputError(rel, why, where=f"page {n}"))
                    lines, found = [], []
            pages.append(lines)
            tables += found
    # OCR measures no type size: a scanned page's lines are body text, so a PDF of scanned pages alone has a section
    # per page headed by its first line (as a scanned image), and a scanned page between text pages adds no heading.
    ocr_lines = {id(line) for line in scanned}
    sizes = Counter(line.size for lines in pages for line in lines if id(line) not in ocr_lines)
    for line in scanned:
        line.size = sizes.most_common(1)[0][0] if sizes else 10.0
    return document_blocks(pages, tables, outline, meta_title, rel, min_chars, max_chars, rows)
