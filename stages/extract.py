"""Extract stage: cut every document under data/raw into blocks (data/interim/blocks.jsonl), one JSON record each.

    finetune extract --input data/raw --output data/interim/blocks.jsonl --metrics metrics/extract.json

Markdown and HTML are cut at headings, a PDF page by page, a CSV row by row, a JSONL of training data line by line;
the Block contract is in stages/schema.py. A file that cannot be read raises InputError, and nothing is written before
every file has been read, so a failed run leaves the previous blocks.jsonl as it was.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections import Counter
from pathlib import Path

import click

from stages.io import InputError, content_id, load_params, log, read_jsonl, write_json, write_jsonl
from stages.schema import BLOCK_KINDS, message_problems

FORMATS = {f".{x}": x for x in ("md", "html", "pdf", "csv", "jsonl", "txt")} | {".htm": "html", ".markdown": "md"}
DEFAULT_MIN_CHARS = 40  # shorter prose is a lead-in like "Follow these steps:", nothing to train on
NO_UNIT = {"", "-", "–", "—"}  # a unit cell saying "dimensionless" (the COP rows); left out of the rendered text


def clean(text: str) -> str:
    """Collapse runs of spaces inside each line; the line structure stays."""
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def one_line(text: str) -> str:
    return " ".join(text.split())


def block(source: str, kind: str, title: str, text: str, **extra) -> dict:
    record = {"id": content_id(source, kind, title, text), "source": source, "kind": kind, "title": title}
    return record | {"text": text, **extra}


def read_text(path: Path, rel: str) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise InputError(rel, "empty file")
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(rel, f"not valid UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8", line) from None


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


# --- PDF: one section per page, the first line 'Aquis - Specifications - AQ-200' (family, heading word, topic) ------

_NUMBER = re.compile(r"[-+−~≈<>≤≥]?\d[\d.,]*(?:[-–]\d[\d.,]*)?%?")
_STEP, _BULLET = re.compile(r"(\d+)[.)]\s+(.*)"), re.compile(r"[-•*–]\s+(.*)")
_TROUBLE = re.compile(r"(symptom|cause|remedy)\s*:\s*(.*)", re.IGNORECASE)
_SPEC = re.compile(r"([^:]{1,60}):\s+(.+)")
_TROUBLE_HEAD, _SPEC_HEAD = ["Symptom", "Cause", "Remedy"], ["Parameter", "Value", "Unit"]


def split_value_unit(value: str) -> tuple[str, str]:
    """'24 kW' -> ('24', 'kW'); '1050 x 560 mm' -> ('1050 x 560', 'mm'): the unit is what follows the last number."""
    tokens = value.split()
    last = max((i for i, t in enumerate(tokens) if _NUMBER.fullmatch(t)), default=None)
    return (value, "") if last is None else (" ".join(tokens[: last + 1]), " ".join(tokens[last + 1 :]))


def pdf_line(line: str, specs_page: bool) -> tuple[str, tuple]:
    """What a line of a page is: ("ol", step), ("ul", note), ("trouble", field, text), ("spec", key, value), prose."""
    if m := _STEP.fullmatch(line):
        return "ol", (m[2],)
    if m := _BULLET.fullmatch(line):
        return "ul", (m[1],)
    if m := _TROUBLE.fullmatch(line):
        return "trouble", (m[1].lower(), m[2])
    # 'Volume: 150 L' is a spec line, 'Note: set it to 3 bar.' is prose; off a Specifications page values are numbers.
    if (m := _SPEC.fullmatch(line)) and ". " not in m[1] and m[2][-1] != "." and (specs_page or m[2][0].isdigit()):
        return "spec", (m[1], m[2])
    return "para", (line,)


def pdf_page_elements(lines: list[str], specs_page: bool) -> list[tuple]:
    merged: list[str] = []
    for line in lines:
        prev = merged and pdf_line(merged[-1], specs_page)[0]
        wrapped = line[:1].islower() or not re.search(r"[.!?)]$", merged[-1] if merged else ".")
        if prev in ("ol", "ul", "trouble") and pdf_line(line, specs_page)[0] == "para" and wrapped:
            merged[-1] += " " + line  # a step or note the layout wrapped onto the next line
        else:
            merged.append(line)
    groups: list[list] = []  # [kind, values] for each run of lines of one kind
    for kind, found in (pdf_line(line, specs_page) for line in merged):
        if not groups or groups[-1][0] != kind:
            groups.append([kind, []])
        values = groups[-1][1]
        if kind == "trouble":
            field = ("symptom", "cause", "remedy").index(found[0])
            if field == 0 or not values or values[-1][field]:  # a Symptom line starts the next row
                values.append(["", "", ""])
            values[-1][field] = found[1]
        elif kind == "spec":
            values.append([found[0], *split_value_unit(found[1])])
        else:
            values.append(found[0])
    heads = {"trouble": _TROUBLE_HEAD, "spec": _SPEC_HEAD}
    # The text layer has no paragraph breaks, so a page's prose lines make one paragraph.
    return [
        ("table", heads[k], v) if k in heads else ("para", " ".join(v)) if k == "para" else (k, v) for k, v in groups
    ]


def pdf_blocks(path: Path, rel: str, min_chars: int = DEFAULT_MIN_CHARS) -> list[dict]:
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
            raise InputError(rel, f"cannot read the text layer ({type(e).__name__}: {e})", where=f"page {n}") from None
        if not lines:
            raise InputError(rel, "no text layer (a scanned page?); run OCR on the PDF first", where=f"page {n}")
        parts = re.split(r"\s+[-–—]\s+", lines[0])  # spaced dashes only: model codes like AQ-200 keep theirs
        word = parts[1] if len(parts) > 1 else parts[0]
        elements = pdf_page_elements(lines[1:], word.lower().startswith("spec"))
        out += section_blocks(f"{rel}#page={n}", " / ".join(parts), word, elements, min_chars)
    return out


# --- CSV, JSONL, plain text -----------------------------------------------------------------------------------------


def csv_blocks(text: str, rel: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text, newline=""))
    out = []
    try:
        header = [one_line(h) for h in next(reader)]
        if not all(header) or len(set(header)) != len(header):
            raise InputError(rel, f"the header needs distinct, non-empty column names, got {header}", 1)
        title_col = next((h for h in header if h.lower() == "name"), header[0])
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise InputError(rel, f"row has {len(row)} fields, the header has {len(header)}", reader.line_num)
            record = {h: one_line(c) for h, c in zip(header, row, strict=True)}
            text_ = "\n".join(f"{h}: {v}" for h, v in record.items() if v)
            title = record[title_col] or record[header[0]]
            out.append(block(f"{rel}#row={len(out) + 1}", "catalog_row", title, text_, rows=[record]))
    except csv.Error as e:
        raise InputError(rel, f"malformed CSV: {e}", reader.line_num) from None
    return out


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def normalise_conversation(obj: dict) -> list:
    """A chat-messages, alpaca or sharegpt record as OpenAI messages; ValueError for any other shape.

    What is wrong inside the messages (roles, empty content) is left to schema.message_problems."""
    if isinstance(msgs := obj.get("messages"), list):
        return [{"role": m.get("role"), "content": m.get("content")} if isinstance(m, dict) else m for m in msgs]
    if "messages" in obj:
        return msgs
    if isinstance(turns := obj.get("conversations"), list):
        for i, t in enumerate(turns):
            if not isinstance(t, dict) or t.get("from") not in SHAREGPT_ROLES:
                got = t.get("from") if isinstance(t, dict) else t
                raise ValueError(f"conversations[{i}] has from {got!r}, expected one of human, gpt, system")
        return [{"role": SHAREGPT_ROLES[t["from"]], "content": t.get("value")} for t in turns]
    if "conversations" in obj:
        raise ValueError("`conversations` must be a list of {from, value} turns")
    if "instruction" in obj and "output" in obj:
        user, extra = obj["instruction"], obj.get("input")
        if isinstance(user, str) and isinstance(extra, str) and extra.strip():
            user = f"{user}\n\n{extra}"
        system = [{"role": "system", "content": obj["system"]}] if obj.get("system") else []
        return [*system, {"role": "user", "content": user}, {"role": "assistant", "content": obj["output"]}]
    raise ValueError(
        f"unknown record shape (keys: {', '.join(sorted(obj)) or 'none'}); "
        "expected `messages`, `conversations` (sharegpt) or `instruction` + `output` (alpaca)"
    )


def jsonl_blocks(path: Path, rel: str) -> list[dict]:
    if path.stat().st_size == 0:
        raise InputError(rel, "empty file")
    out = []
    for lineno, obj in read_jsonl(path):
        try:
            messages = normalise_conversation(obj)
        except ValueError as e:
            raise InputError(rel, str(e), lineno) from None
        if problems := message_problems(messages):
            raise InputError(rel, "; ".join(problems), lineno)
        first = one_line(next(m["content"] for m in messages if m["role"] == "user"))
        title = first if len(first) <= 80 else first[:79] + "…"
        text = "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages)
        out.append(block(f"{rel}#line={lineno}", "qa", title, text, messages=messages))
    if not out:
        raise InputError(rel, "no records, only blank lines")
    return out


def txt_blocks(text: str, rel: str, min_chars: int = DEFAULT_MIN_CHARS) -> list[dict]:
    paragraphs = [clean(p) for p in re.split(r"\n\s*\n", text)]
    title = Path(rel).stem
    return [block(f"{rel}#para={n}", "prose", title, p) for n, p in enumerate(paragraphs, 1) if len(p) >= min_chars]


# --- the stage ------------------------------------------------------------------------------------------------------


def file_blocks(path: Path, min_chars: int = DEFAULT_MIN_CHARS) -> tuple[str, list[dict]]:
    """(format, blocks) of one file. Sources are relative to the working directory: the repo root under DVC."""
    rel = Path(os.path.relpath(path)).as_posix()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = " ".join(sorted(FORMATS))
        raise InputError(rel, f"unsupported file type {path.suffix or '(none)'!r} (supported: {supported})")
    if fmt == "pdf":
        return fmt, pdf_blocks(path, rel, min_chars)
    if fmt == "jsonl":
        return fmt, jsonl_blocks(path, rel)
    text = read_text(path, rel)
    if fmt == "csv":
        return fmt, csv_blocks(text, rel)
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


def run(input_dir: str | os.PathLike, min_chars: int = DEFAULT_MIN_CHARS, progress: bool = False):
    """(blocks, counts): every block of every file under input_dir in sorted file order, and the metrics."""
    from tqdm import tqdm

    blocks, seen, formats = [], set(), Counter()
    for path in tqdm(input_files(Path(input_dir)), desc="[extract] files", file=sys.stderr, disable=not progress):
        fmt, found = file_blocks(path, min_chars)
        formats[fmt] += 1
        for b in found:
            if b["id"] in seen:  # the same text under the same heading twice would only duplicate examples
                log("extract", f"skipping a duplicate block in {b['source']}")
                continue
            seen.add(b["id"])
            blocks.append(b)
    kinds = Counter(b["kind"] for b in blocks)
    counts = {
        "blocks": {k: kinds[k] for k in sorted(BLOCK_KINDS)},
        "files": {f: formats[f] for f in sorted(set(FORMATS.values()))},
        "total_blocks": len(blocks),
    }
    return blocks, counts


def read_min_chars(params_path: Path, required: bool) -> int:
    """extract.min_chars; a missing params file (unless named on the command line) or section means the default."""
    if not required and not params_path.exists():
        return DEFAULT_MIN_CHARS
    section = load_params(params_path).get("extract") or {}
    value = section.get("min_chars", DEFAULT_MIN_CHARS) if isinstance(section, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(params_path, f"extract.min_chars must be a whole number >= 0, got {value!r}")
    return value


@click.command(name="extract")
@click.option("--input", "input_dir", default="data/raw", show_default=True, type=click.Path(path_type=Path))
@click.option("--output", default="data/interim/blocks.jsonl", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", default="metrics/extract.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(path_type=Path))
@click.pass_context
def cli(ctx, input_dir, output, metrics, params_path):
    """Cut raw documents into blocks: spec tables, procedures, wiring, troubleshooting, prose, catalog rows, Q&A."""
    named = ctx.get_parameter_source("params_path") != click.core.ParameterSource.DEFAULT
    blocks, counts = run(input_dir, read_min_chars(params_path, required=named), progress=True)
    write_jsonl(output, blocks)
    write_json(metrics, counts)
    kinds = ", ".join(f"{k} {n}" for k, n in counts["blocks"].items() if n)
    log("extract", f"{len(blocks)} blocks from {sum(counts['files'].values())} files ({kinds}) -> {output}")
