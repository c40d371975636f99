"""A folder of documents -> blocks and counts: every supported file in sorted order, duplicates dropped, bad files or
records either stopping the run (on_error: fail) or listed as rejects (skip)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from finetune.documents.readers import DEFAULT_MIN_CHARS, FORMATS, file_blocks
from finetune.io import InputError, log
from finetune.schema import BLOCK_KINDS

ON_ERROR = ("fail", "skip")


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


def run(
    input_dir,
    min_chars: int = DEFAULT_MIN_CHARS,
    progress: bool = False,
    on_error: str = "fail",
    rejects=None,
    max_chars: int = 0,
):
    """(blocks, counts): every block of every file under input_dir in sorted file order, and the metrics.

    on_error="fail" raises the first InputError; "skip" leaves the bad file or record out, appends its reject_entry
    to the `rejects` list (if given) and goes on. max_chars > 0 cuts longer sections into parts."""
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
            fmt, found = file_blocks(path, min_chars, skip, max_chars)
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
        # Sections cut into parts by extract.max_chars: how many, and how many parts they gave.
        "split": {
            "sections": len({b["source"].rsplit("#part=", 1)[0] for b in blocks if "#part=" in b["source"]}),
            "parts": sum("#part=" in b["source"] for b in blocks),
        },
        "total_blocks": len(blocks),
    }
    return blocks, counts
