"""A folder of documents -> blocks and counts: every supported file in sorted order, duplicates dropped, bad files or
records either stopping the run (on_error: fail) or listed as rejects (skip)."""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path

from finetune.documents.pages import NO_ROWS, RowLabels
from finetune.documents.readers import DEFAULT_MIN_CHARS, FORMATS, file_blocks
from finetune.io import InputError, log
from finetune.io import progress as progress_of
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


def run(
    input_dir,
    min_chars: int = DEFAULT_MIN_CHARS,
    progress: bool = False,
    on_error: str = "fail",
    rejects=None,
    max_chars: int = 0,
    rows: RowLabels = NO_ROWS,
    not_titles: tuple[str, ...] = (),
):
    """(blocks, counts): every block of every file under input_dir in sorted file order, and the metrics.

    on_error="fail" raises the first InputError; "skip" leaves the bad file or record out, appends its reject_entry
    to the `rejects` list (if given) and goes on. max_chars > 0 cuts longer sections into parts. `rows`: how the
    corpus writes table rows as lines (RowLabels.from_lists of the extract params); the default knows no such rows.
    `not_titles`: first headings that name no document (extract.not_titles)."""
    rejects = [] if rejects is None else rejects
    pending: list[tuple[InputError, str]] = []  # the current file's bad records, listed once the file is read

    def skip(error: InputError, what: str = "record") -> None:
        if on_error == "fail":
            raise error
        pending.append((error, what))

    blocks, seen, formats = [], set(), Counter()
    root = Path(input_dir)
    files = input_files(root)
    for path in progress_of(files, "extract", "read", "file") if progress else files:
        pending.clear()
        rel = Path(os.path.relpath(path)).as_posix()
        try:
            if not check_link(path, root):
                continue
            check_file(path)
            fmt, found = file_blocks(path, min_chars, skip, max_chars, rows, tuple(not_titles))
        except (InputError, OSError) as e:
            if isinstance(e, OSError):  # unreadable (permissions, a disk error): a file to fix, like any other
                e = InputError(rel, f"cannot read it ({e.strerror or e})")
            # The file is left out whole: its records' rejects would list it twice, for a lesser reason.
            pending.clear()
            skip(e, "file")
            fmt, found = None, []
        for error, what in pending:
            log("extract", f"skipped {what}: {error}")
            rejects.append(reject_entry(error, what))
        if fmt is None:
            continue
        formats[fmt] += 1
        duplicates = 0
        for b in found:
            if b["id"] in seen:  # the same text under the same heading twice would only duplicate examples
                duplicates += 1
                continue
            seen.add(b["id"])
            blocks.append(b)
        if duplicates:  # one line a file: a file of one section repeated 100,000 times must not print 100,000
            log("extract", f"skipped {duplicates} duplicate block{'s' * (duplicates != 1)} in {rel}")
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
