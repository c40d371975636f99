"""A folder of documents -> blocks and counts: every supported file in sorted order, duplicates dropped, bad files or
records either stopping the run (on_error: fail) or listed as rejects (skip)."""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from itertools import repeat
from pathlib import Path

from finetune.documents.blockcache import BlockCache, ReadSettings, entry_key
from finetune.documents.ocr import DEFAULT_OCR, OcrSettings, pdf_page_count
from finetune.documents.pages import NO_ROWS, RowLabels
from finetune.documents.readers import DEFAULT_MIN_CHARS, FORMATS, file_blocks
from finetune.io import InputError, Progress, log
from finetune.schema import BLOCK_KINDS

ON_ERROR = ("fail", "skip")


def input_files(input_dir: Path) -> list[Path]:
    """Every entry under input_dir that may be a document, in sorted order, without following any link: a symbolic
    link is listed as itself, for check_link to judge. Hidden files (.DS_Store, swap files, .gitignore) are skipped."""
    if not input_dir.is_dir():
        raise InputError(input_dir, "input directory not found")
    found = []
    for folder, dirs, files in os.walk(input_dir, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (Path(folder) / d).is_symlink()]
        links = [d for d in os.listdir(folder) if (Path(folder) / d).is_symlink() and d not in files]
        found += [Path(folder) / name for name in [*files, *links] if not name.startswith(".")]
    if not found:
        raise InputError(input_dir, "no input files")
    return sorted(found, key=lambda p: p.relative_to(input_dir).as_posix())


def check_link(path: Path, root: Path) -> bool:
    """For a symbolic link: raise InputError (naming the link) when it loops, dangles or leads out of `root`; return
    False for a link to a folder inside root (its files are read where they really are). True: read `path`.

    Nothing outside the data folder is ever read: a link would otherwise carry any file on the machine into blocks,
    examples, predictions and the git-tracked report."""
    if not path.is_symlink():
        return True
    rel = Path(os.path.relpath(path)).as_posix()
    try:
        target = Path(os.path.realpath(path, strict=True))
    except OSError as e:  # ELOOP for a loop, ENOENT for a dangling link
        why = "loops back on itself" if e.errno == errno.ELOOP else "points to nothing"
        raise InputError(rel, f"a symbolic link that {why}: remove it") from None
    if not target.is_relative_to(root.resolve()):
        raise InputError(rel, f"a symbolic link to {target}, outside {root}: copy the file in instead of linking it")
    return not target.is_dir()


def check_file(path: Path) -> None:
    """Raise InputError for an entry no reader may open: a name that is not UTF-8 (no output could hold it) or
    something other than a regular file (a named pipe would block the read forever)."""
    rel = Path(os.path.relpath(path)).as_posix()
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise InputError(shown, "the file name is not valid UTF-8: rename it") from None
    if not path.is_file():
        raise InputError(rel, "not a regular file (a named pipe, socket or device): remove it")


def reject_entry(error: InputError, what: str) -> dict:
    """{path, line, row|page, rule, skipped} for metrics/rejects.json."""
    entry: dict = {"path": error.path}
    if error.line is not None:
        entry["line"] = error.line
    if error.where:
        key, _, n = error.where.partition(" ")  # "row 4", "page 2"
        entry[key] = int(n) if n.isdigit() else error.where
    return entry | {"rule": error.message, "skipped": what}


def read_one(path: Path, settings: ReadSettings) -> dict:
    """What reading one file gives, as JSON (a cache entry, or a worker's answer): its format, blocks, bad records
    and the error that stopped it, if one did. Bad records are collected, not raised, whatever extract.on_error says,
    so one entry serves both modes: with fail, the first of them is what would have stopped the read."""
    rel = Path(os.path.relpath(path)).as_posix()
    records: list[InputError] = []
    try:
        s = settings
        fmt, found = file_blocks(path, s.min_chars, records.append, s.max_chars, s.rows, s.not_titles, s.ocr)
    except (InputError, OSError) as e:
        if isinstance(e, OSError):  # unreadable (permissions, a disk error): a file to fix, like any other
            e = InputError(rel, f"cannot read it ({e.strerror or e})")
        return {"format": None, "blocks": [], "records": [_plain(r) for r in records], "error": _plain(e)}
    return {"format": fmt, "blocks": found, "records": [_plain(r) for r in records], "error": None}


def _plain(e: InputError) -> list:
    return [e.path, e.message, e.line, e.where]


def worker_count(workers: int | str) -> int:
    """extract.workers as a number: "auto" is every core this process may run on."""
    return len(os.sched_getaffinity(0)) if workers == "auto" else int(workers)


def _reads(paths: list[Path], settings: ReadSettings, workers: int, stack: ExitStack) -> Iterator[dict]:
    """read_one of each path, in order, `workers` at a time (in this process when one)."""
    if workers <= 1 or len(paths) <= 1:
        return (read_one(p, settings) for p in paths)
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(min(workers, len(paths)))
    # A run that stops early (on_error: fail) must not wait for the files still queued.
    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    return pool.map(read_one, paths, repeat(settings))


def _combine(result: dict, path: Path, on_error: str, rejects: list, blocks: list, seen: set) -> None:
    """Add one file's result to the run's blocks (duplicates dropped) and rejects, or raise what stops the run."""
    records = [InputError(p, message, line, where) for p, message, line, where in result["records"]]
    error = InputError(*result["error"]) if result["error"] else None
    if on_error == "fail" and (records or error):
        raise records[0] if records else error
    # A bad file is left out whole: its records' rejects would list it twice, for a lesser reason.
    for e, what in [(error, "file")] if error else [(r, "record") for r in records]:
        log("extract", f"skipped {what}: {e}")
        rejects.append(reject_entry(e, what))
    if error:
        return
    duplicates = 0
    for b in result["blocks"]:
        if b["id"] in seen:  # the same text under the same heading twice would only duplicate examples
            duplicates += 1
            continue
        seen.add(b["id"])
        blocks.append(b)
    if duplicates:  # one line a file: a file of one section repeated 100,000 times must not print 100,000
        rel = Path(os.path.relpath(path)).as_posix()
        log("extract", f"skipped {duplicates} duplicate block{'s' * (duplicates != 1)} in {rel}")


def run(
    input_dir,
    min_chars: int = DEFAULT_MIN_CHARS,
    progress: bool = False,
    on_error: str = "fail",
    rejects=None,
    max_chars: int = 0,
    rows: RowLabels = NO_ROWS,
    not_titles: tuple[str, ...] = (),
    ocr: OcrSettings = DEFAULT_OCR,
    workers: int | str = 1,
    cache_dir=None,
):
    """(blocks, counts): every block of every file under input_dir in sorted file order, and the metrics.

    on_error="fail" raises the first InputError; "skip" leaves the bad file or record out, appends its reject_entry
    to the `rejects` list (if given) and goes on. max_chars > 0 cuts longer sections into parts. `rows`: how the
    corpus writes table rows as lines (RowLabels.from_lists of the extract params); the default knows no such rows.
    `not_titles`: first headings that name no document (extract.not_titles); `ocr`: how scanned pages are read.
    Files are read `workers` at a time ("auto": one per core), each taken from `cache_dir` (a BlockCache) when
    nothing that shapes its blocks changed. The results are combined in sorted file order, so the blocks, counts and
    rejects are the same whatever the worker count and the cache hold."""
    rejects = [] if rejects is None else rejects
    settings = ReadSettings(min_chars, max_chars, rows, tuple(not_titles), ocr)
    store = BlockCache(cache_dir) if cache_dir else None
    root = Path(input_dir)
    plan: list[tuple[Path, int, dict | None, str | None]] = []  # (file, pages, its result if known, cache key)
    for path in input_files(root):
        rel = Path(os.path.relpath(path)).as_posix()
        try:
            if not check_link(path, root):
                continue
            check_file(path)
        except InputError as e:
            plan.append((path, 1, {"format": None, "blocks": [], "records": [], "error": _plain(e)}, None))
            continue
        fmt, key, result = FORMATS.get(path.suffix.lower()), None, None
        if store is not None and fmt is not None:
            with suppress(OSError):  # an unreadable file is the reader's to name
                key = entry_key(rel, fmt, path.read_bytes(), settings)
                result = store.get(key)
        plan.append((path, pdf_page_count(path) if fmt == "pdf" else 1, result, key))
    todo = [path for path, _, result, _ in plan if result is None]
    if store is not None:
        log(
            "extract",
            f"{len(plan) - len(todo)} of {len(plan)} files from the cache ({cache_dir}), {len(todo)} to read",
        )

    blocks, seen, formats = [], set(), Counter()
    with ExitStack() as stack:
        read = _reads(todo, settings, worker_count(workers), stack)
        bar = (
            stack.enter_context(Progress("extract", "read", sum(p for _, p, _, _ in plan), "page"))
            if progress
            else None
        )
        for path, pages, result, key in plan:
            if result is None:
                result = next(read)
                if key is not None and result["error"] is None:
                    store.put(key, result)
            if bar is not None:
                bar.update(pages)
            formats[result["format"]] += 1
            _combine(result, path, on_error, rejects, blocks, seen)
    formats.pop(None, None)
    if not blocks:
        # Nothing for base or generate to work on: say so here, with what was found, not later as a traceback.
        left_out = f", {len(rejects)} files or records left out by extract.on_error: skip" if rejects else ""
        raise InputError(
            root, f"no blocks: {sum(formats.values())} files read{left_out}; add documents or fix the rejected ones"
        )
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
