"""Extract stage: cut every document under data/raw into blocks (data/interim/blocks.jsonl), one JSON record each.

    finetune extract --input data/raw --output data/interim/blocks.jsonl --metrics metrics/extract.json \
        --rejects metrics/rejects.json

Markdown and HTML are cut at headings, a PDF page or a scanned page (PNG/JPEG, read by Tesseract OCR) page by page,
a CSV row by row, a JSONL of training data line by line; the Block contract is in stages/schema.py. Bad input is an
InputError naming the file and its line, row or page. With `extract.on_error: fail` the first one stops the stage;
with `skip` the bad file or record is left out and listed in metrics/rejects.json. Nothing is written before every
file has been read, so a failed run leaves the previous outputs as they were.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import click

from stages.io import InputError, content_id, load_params, log, write_json, write_jsonl
from stages.lines import check_text_file, conversation, raw_lines, read_text, too_long
from stages.pages import page_section
from stages.schema import BLOCK_KINDS

FORMATS = {f".{x}": x for x in ("md", "html", "pdf", "csv", "jsonl", "txt")} | {".htm": "html", ".markdown": "md"}
FORMATS |= {".png": "image", ".jpg": "image", ".jpeg": "image"}  # scanned pages, read by OCR
DEFAULT_MIN_CHARS = 40  # shorter prose is a lead-in like "Follow these steps:", nothing to train on
ON_ERROR = ("fail", "skip")
NO_UNIT = {"", "-", "–", "—"}  # a unit cell saying "dimensionless" (the COP rows); left out of the rendered text
# A CSV with either of the first two columns is a product catalog: TERMINOLOGY (stages/tasks.py) asks about each
# informal name and answers `name (model_code, rating unit)`, so a catalog needs all five columns.
CATALOG_COLUMNS = ("model_code", "informal_names", "name", "rating", "unit")
CATALOG_CELLS = ("model_code", "name", "rating", "unit")  # informal_names may be empty: no questions, still a product


def clean(text: str) -> str:
    """Collapse runs of spaces inside each line; the line structure stays."""
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def one_line(text: str) -> str:
    return " ".join(text.split())


def block(source: str, kind: str, title: str, text: str, **extra) -> dict:
    record = {"id": content_id(source, kind, title, text), "source": source, "kind": kind, "title": title}
    return record | {"text": text, **extra}


# --- one section (a heading's content or a PDF page) -> blocks; shared by Markdown, HTML and PDF --------------------
# A section is a list of elements: ("para", text), ("table", header, rows), ("ol", items) or ("ul", items).


def table_rows(header: list[str], rows: list[list[str]]) -> list[dict]:
    keys = [one_line(h) or f"Column {i + 1}" for i, h in enumerate(header)]
    keys = [k if k not in keys[:i] else f"{k} ({i + 1})" for i, k in enumerate(keys)]
    out = []
    for cells in ([one_line(c) for c in row] for row in rows):
        keys += [f"Column {i + 1}" for i in range(len(keys), len(cells))]  # a row longer than the header
        if any(cells):
            out.append({k: cells[i] if i < len(cells) else "" for i, k in enumerate(keys)})
    return out


def render_row(row: dict) -> str:
    if [k.lower() for k in row][:2] == ["parameter", "value"] and len(row) <= 3:
        p, v, *unit = row.values()
        return f"{p}: {v} {''.join(u for u in unit if u not in NO_UNIT)}".rstrip()
    return "; ".join(f"{k}: {v}" for k, v in row.items() if v)


def section_blocks(source: str, title: str, heading: str, elements: list[tuple], min_chars: int) -> list[dict]:
    """Blocks of one section in document order; the first word of `heading` (the nearest one) can make it wiring."""
    wiring = heading.lower().startswith("wiring")
    out, prose, notes, prose_at = [], [], [], None
    for kind, *content in elements:
        if kind == "table" and (rows := table_rows(*content)):
            kind = "troubleshooting" if any("symptom" in k.lower() for k in rows[0]) else "spec_table"
            out.append(block(source, kind, title, "\n".join(map(render_row, rows)), rows=rows))
        elif kind == "ol" and (items := [clean(i) for i in content[0] if i.strip()]):
            text = "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1))
            out.append(block(source, "procedure", title, text, items=items))
        elif kind in ("ul", "para"):
            # Paragraphs and bullets of a section make one block, placed where its first paragraph was.
            prose_at = len(out) if prose_at is None else prose_at
            items = [clean(i) for i in content[0] if i.strip()] if kind == "ul" else []
            notes += items
            prose.append("\n".join(f"- {i}" for i in items) if kind == "ul" else clean(content[0]))
    text = "\n\n".join(p for p in prose if p)
    if not text:
        return out  # no prose at all: nothing to place, even with min_chars 0
    if wiring and (notes or len(text) >= min_chars):
        # The bullets are the wiring notes; an intro or a warning paragraph around them stays in `text`.
        out.insert(prose_at, block(source, "wiring", title, text, items=notes or [p for p in prose if p]))
    elif not wiring and len(text) >= min_chars:
        out.insert(prose_at, block(source, "prose", title, text))
    return out


def heading_blocks(rel: str, events: list[tuple], min_chars: int) -> list[dict]:
    """Cut ("h", level, text) events and the elements between them into sections, then blocks (Markdown, HTML)."""
    out, heads, elements = [], [], []
    for ev in [*events, ("h", 0, "")]:  # the sentinel heading flushes the last section
        if ev[0] != "h":
            elements.append(ev)
            continue
        if elements:
            # The H1 is the document's title: locations leave it out unless it is all there is.
            loc = [t for lvl, t in heads if lvl > 1] or [t for _, t in heads] or [Path(rel).stem]
            title = " / ".join(t for _, t in heads) or Path(rel).stem
            out += section_blocks(f"{rel}#h={'/'.join(loc)}", title, loc[-1], elements, min_chars)
            elements = []
        heads = [h for h in heads if h[0] < ev[1]] + [(ev[1], one_line(ev[2]))]
    return out


# --- Markdown and HTML: markdown-it renders Markdown to HTML, then one parser (stages/markup.py) reads both ------


def html_blocks(text: str, rel: str, min_chars: int = DEFAULT_MIN_CHARS) -> list[dict]:
    from stages.markup import parse_html

    return heading_blocks(rel, parse_html(text), min_chars)


def markdown_blocks(text: str, rel: str, min_chars: int = DEFAULT_MIN_CHARS) -> list[dict]:
    from markdown_it import MarkdownIt

    return html_blocks(MarkdownIt("commonmark").enable("table").render(text), rel, min_chars)


# --- pages: a PDF page's text layer or a scanned page's OCR text, cut by the line rules of stages/pages.py ----------


def page_blocks(source: str, lines: list[str], min_chars: int) -> list[dict]:
    title, word, elements = page_section(lines)
    return section_blocks(source, title, word, elements, min_chars)


def pdf_blocks(path: Path, rel: str, min_chars: int, reject) -> list[dict]:
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
        pages = list(reader.pages)
    except broken as e:
        raise InputError(rel, f"unreadable PDF ({type(e).__name__}: {e})") from None
    out = []
    for n, page in enumerate(pages, 1):
        try:
            lines = [one_line(line) for line in (page.extract_text() or "").splitlines() if line.strip()]
        except broken as e:
            reject(InputError(rel, f"cannot read the text layer ({type(e).__name__}: {e})", where=f"page {n}"))
            continue
        if not lines:
            reject(InputError(rel, "no text layer (a scanned page?); run OCR on the PDF first", where=f"page {n}"))
            continue
        out += page_blocks(f"{rel}#page={n}", lines, min_chars)
    return out


def image_blocks(path: Path, rel: str, min_chars: int) -> list[dict]:
    """A scanned page: Tesseract's text, cut like a PDF page (source `#page=1`, so both read the same downstream)."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise InputError(
            rel, "a scanned page needs OCR, but `tesseract` is not installed: apt-get install tesseract-ocr"
        )
    t0 = time.perf_counter()
    # One OpenMP thread: on a page Tesseract's threads cost more than they save (0.7 s vs 2-3 s on 2 cores).
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    proc = subprocess.run([exe, str(path), "stdout", "-l", "eng"], capture_output=True, env=env)
    if proc.returncode != 0:
        said = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise InputError(rel, f"OCR failed: tesseract says {' / '.join(said[-2:]) or 'nothing'}")
    lines = [one_line(ln) for ln in proc.stdout.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    log("extract", f"OCR {rel}: {len(lines)} lines in {time.perf_counter() - t0:.2f} s")
    if not lines:
        raise InputError(rel, "OCR found no text (a blank page, or a scan below ~200 dpi?)", where="page 1")
    return page_blocks(f"{rel}#page=1", lines, min_chars)


# --- CSV, JSONL, plain text -----------------------------------------------------------------------------------------


def csv_blocks(text: str, rel: str, reject) -> list[dict]:
    """A product catalog (see CATALOG_COLUMNS) gives catalog_row blocks; any other CSV is a table like one in a
    document, a spec_table (or troubleshooting, with a Symptom column) block per row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out, n = [], 0
    try:
        header = [one_line(h) for h in next(reader)]
        if not all(header) or len(set(header)) != len(header):
            raise InputError(rel, f"the header needs distinct, non-empty column names, got {header}", 1)
        catalog = bool(set(CATALOG_COLUMNS[:2]) & set(header))
        if catalog and (missing := [c for c in CATALOG_COLUMNS if c not in header]):
            raise InputError(
                rel, f"a catalog CSV needs the columns {', '.join(CATALOG_COLUMNS)}; missing {', '.join(missing)}", 1
            )
        kind = "catalog_row" if catalog else "troubleshooting" if "symptom" in map(str.lower, header) else "spec_table"
        title_col = next((h for h in header if h.lower() == "name"), header[0])
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            n += 1  # data rows are numbered whether kept or not, so a skipped row never renumbers the rest
            where = f"row {n}"
            if len(row) != len(header):
                reject(InputError(rel, f"has {len(row)} fields, the header has {len(header)}", reader.line_num, where))
                continue
            record = {h: one_line(c) for h, c in zip(header, row, strict=True)}
            if catalog and (empty := [c for c in CATALOG_CELLS if not record[c]]):
                why = f"empty {', '.join(empty)}: every catalog row needs {', '.join(CATALOG_CELLS)}"
                reject(InputError(rel, why, reader.line_num, where))
                continue
            text_ = "\n".join(f"{h}: {v}" for h, v in record.items() if v)
            # A table's rows share one subject, the file (`aq400.csv`: "the rated volume of the aq400").
            title = (record[title_col] or record[header[0]]) if catalog else Path(rel).stem
            out.append(block(f"{rel}#row={n}", kind, title, text_, rows=[record]))
    except csv.Error as e:
        raise InputError(rel, f"malformed CSV: {e}", reader.line_num) from None
    except StopIteration:
        raise InputError(rel, "empty file") from None
    return out


def jsonl_blocks(path: Path, rel: str, reject) -> list[dict]:
    check_text_file(path, rel)
    out, records = [], 0
    for lineno, raw in raw_lines(path):
        if raw is not None and not raw.strip():
            continue
        records += 1
        if raw is None:
            reject(too_long(rel, lineno))
            continue
        try:
            messages = conversation(raw)
        except ValueError as e:
            reject(InputError(rel, str(e), lineno))
            continue
        first = one_line(next(m["content"] for m in messages if m["role"] == "user"))
        title = first if len(first) <= 80 else first[:79] + "…"
        text = "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages)
        out.append(block(f"{rel}#line={lineno}", "qa", title, text, messages=messages))
    if not records:
        raise InputError(rel, "no records, only blank lines")
    return out


def txt_blocks(text: str, rel: str, min_chars: int = DEFAULT_MIN_CHARS) -> list[dict]:
    paragraphs = [clean(p) for p in re.split(r"\n\s*\n", text)]
    title = Path(rel).stem
    return [block(f"{rel}#para={n}", "prose", title, p) for n, p in enumerate(paragraphs, 1) if len(p) >= min_chars]


# --- the stage ------------------------------------------------------------------------------------------------------


def fail(error: InputError) -> None:
    raise error


def file_blocks(path: Path, min_chars: int = DEFAULT_MIN_CHARS, reject=fail) -> tuple[str, list[dict]]:
    """(format, blocks) of one file. A bad file raises InputError; a bad record (line, row, page) goes to `reject`,
    which raises it too unless the caller skips bad records. Sources are relative to the working directory."""
    rel = Path(os.path.relpath(path)).as_posix()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = " ".join(sorted(FORMATS))
        raise InputError(rel, f"unsupported file type {path.suffix or '(none)'!r} (supported: {supported})")
    if fmt == "pdf":
        return fmt, pdf_blocks(path, rel, min_chars, reject)
    if fmt == "image":
        return fmt, image_blocks(path, rel, min_chars)
    if fmt == "jsonl":
        return fmt, jsonl_blocks(path, rel, reject)
    text = read_text(path, rel)
    if fmt == "csv":
        return fmt, csv_blocks(text, rel, reject)
    if fmt == "txt":
        return fmt, txt_blocks(text, rel, min_chars)
    return fmt, (markdown_blocks if fmt == "md" else html_blocks)(text, rel, min_chars)


def input_files(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        raise InputError(input_dir, "input directory not found")
    # Hidden files (.DS_Store, editor swap files, .gitignore) are never documents.
    hidden = re.compile(r"(^|/)\.")
    files = [p for p in input_dir.rglob("*") if p.is_file() and not hidden.search(p.relative_to(input_dir).as_posix())]
    if not files:
        raise InputError(input_dir, "no input files")
    return sorted(files, key=lambda p: p.relative_to(input_dir).as_posix())


def reject_entry(error: InputError, what: str) -> dict:
    """{path, line, row|page, rule, skipped} for metrics/rejects.json."""
    entry: dict = {"path": error.path}
    if error.line is not None:
        entry["line"] = error.line
    if error.where:
        key, _, n = error.where.partition(" ")  # "row 4", "page 2"
        entry[key] = int(n) if n.isdigit() else error.where
    return entry | {"rule": error.message, "skipped": what}


def run(input_dir, min_chars: int = DEFAULT_MIN_CHARS, progress: bool = False, on_error: str = "fail", rejects=None):
    """(blocks, counts): every block of every file under input_dir in sorted file order, and the metrics.

    on_error="fail" raises the first InputError; "skip" leaves the bad file or record out, appends its reject_entry
    to the `rejects` list (if given) and goes on."""
    from tqdm import tqdm

    rejects = [] if rejects is None else rejects

    def skip(error: InputError, what: str = "record") -> None:
        if on_error == "fail":
            raise error
        log("extract", f"skipped {what}: {error}")
        rejects.append(reject_entry(error, what))

    blocks, seen, formats = [], set(), Counter()
    for path in tqdm(input_files(Path(input_dir)), desc="[extract] files", file=sys.stderr, disable=not progress):
        try:
            fmt, found = file_blocks(path, min_chars, skip)
        except InputError as e:
            skip(e, "file")
            continue
        formats[fmt] += 1
        for b in found:
            if b["id"] in seen:  # the same text under the same heading twice would only duplicate examples
                log("extract", f"skipping a duplicate block in {b['source']}")
                continue
            seen.add(b["id"])
            blocks.append(b)
    kinds, skipped = Counter(b["kind"] for b in blocks), Counter(r["skipped"] for r in rejects)
    counts = {
        "blocks": {k: kinds[k] for k in sorted(BLOCK_KINDS)},
        "files": {f: formats[f] for f in sorted(set(FORMATS.values()))},
        "rejected": {"files": skipped["file"], "records": skipped["record"]},
        "total_blocks": len(blocks),
    }
    return blocks, counts


def read_params(params_path: Path, required: bool) -> tuple[int, str]:
    """(extract.min_chars, extract.on_error); a missing params file (unless named) or key means the default."""
    if not required and not params_path.exists():
        return DEFAULT_MIN_CHARS, "fail"
    section = load_params(params_path).get("extract") or {}
    section = section if isinstance(section, dict) else {"min_chars": None}
    value, on_error = section.get("min_chars", DEFAULT_MIN_CHARS), section.get("on_error", "fail")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(params_path, f"extract.min_chars must be a whole number >= 0, got {value!r}")
    if on_error not in ON_ERROR:
        raise InputError(params_path, f"extract.on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    return value, on_error


@click.command(name="extract")
@click.option("--input", "input_dir", default="data/raw", show_default=True, type=click.Path(path_type=Path))
@click.option("--output", default="data/interim/blocks.jsonl", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/extract.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--rejects", default="metrics/rejects.json", show_default=True, type=click.Path(path_type=Path),
              help="Where extract.on_error: skip lists what it left out (an empty list otherwise).")  # fmt: skip
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(path_type=Path))
@click.pass_context
def cli(ctx, input_dir, output, metrics, rejects, params_path):
    """Cut raw documents into blocks: spec tables, procedures, wiring, troubleshooting, prose, catalog rows, Q&A."""
    named = ctx.get_parameter_source("params_path") != click.core.ParameterSource.DEFAULT
    min_chars, on_error = read_params(params_path, required=named)
    rejected: list[dict] = []
    blocks, counts = run(input_dir, min_chars, progress=True, on_error=on_error, rejects=rejected)
    write_jsonl(output, blocks)
    write_json(metrics, counts)
    write_json(rejects, rejected)
    kinds = ", ".join(f"{k} {n}" for k, n in counts["blocks"].items() if n)
    log("extract", f"{len(blocks)} blocks from {sum(counts['files'].values())} files ({kinds}) -> {output}")
    if rejected:
        log("extract", f"left out {len(rejected)} bad files or records (extract.on_error: skip), listed in {rejects}")
