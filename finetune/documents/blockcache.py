"""Extract's per-file cache: what reading one file gave (its format, blocks and bad records), kept under a key of
everything that shapes it, so that a rerun after one page of a thousand changed reads that page only.

The key is the file's path (block sources name it) and bytes, the extract params its format reads (an OCR setting
never touches a CSV's entry), the source code of the modules its reader runs and the versions of the libraries (and
of Tesseract) it runs. Entries live in extract.cache
(data/interim/extract_cache: gitignored and no DVC out, so DVC never deletes it between runs), one JSON file each,
written atomically: a run killed mid-write leaves a temporary file, never a half entry that a later run would take.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from finetune.documents.ocr import DEFAULT_OCR, OcrSettings
from finetune.documents.pages import NO_ROWS, RowLabels
from finetune.io import write_text

KEY_VERSION = "1"  # bump when an entry's layout changes
_SHARED = ("readers", "sections", "parts", "markup", "tables", "textfiles")  # every reader: readers.file_blocks
# The finetune.documents modules each format's reader runs, besides _SHARED, and the extract params it reads.
READER_MODULES = {
    "md": (), "html": (), "txt": ("plaintext",), "csv": (),
    "json": ("chatfiles",), "jsonl": ("chatfiles",),
    "pdf": ("pdf", "pages", "ocr"), "image": ("pages", "ocr"),
}  # fmt: skip
_PAGE_PARAMS = ("min_chars", "max_chars", "rows")
READER_PARAMS = {
    "md": (*_PAGE_PARAMS, "not_titles"), "html": (*_PAGE_PARAMS, "not_titles"),
    "txt": ("min_chars", "max_chars", "not_titles"), "csv": (), "json": (), "jsonl": (),
    "pdf": (*_PAGE_PARAMS, "ocr"), "image": (*_PAGE_PARAMS, "ocr"),
}  # fmt: skip


@dataclass(frozen=True)
class ReadSettings:
    """The extract params that shape a file's blocks (everything file_blocks takes but the file)."""

    min_chars: int = 40
    max_chars: int = 0
    rows: RowLabels = NO_ROWS
    not_titles: tuple[str, ...] = ()
    ocr: OcrSettings = DEFAULT_OCR


@cache
def module_source(name: str) -> bytes:
    return (Path(__file__).parent / f"{name}.py").read_bytes()


# The libraries each format's reader runs, and Tesseract for scans: an upgrade may read a file differently.
LIBRARIES = {"md": ("markdown-it-py",), "pdf": ("pypdf", "pdfplumber", "pdfminer.six", "pypdfium2", "pillow")}


@cache
def tesseract_version() -> str:
    import shutil
    import subprocess

    exe = shutil.which("tesseract")
    if exe is None:
        return "none"  # nothing OCR'd is cached then: every scan is an error
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]


@cache
def code_version(fmt: str) -> str:
    """A hash of the source of every module `fmt`'s reader runs (and of finetune.io, whose content ids blocks carry),
    of the versions of the libraries it runs and, for scans, of Tesseract's."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for name in sorted({*_SHARED, *READER_MODULES[fmt]}):
        h.update(name.encode() + b"\0" + module_source(name) + b"\0")
    h.update((Path(__file__).parent.parent / "io.py").read_bytes())
    for library in LIBRARIES.get(fmt, ()):
        try:
            h.update(f"{library} {version(library)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{library} none\0".encode())
    if fmt in ("pdf", "image"):
        h.update(tesseract_version().encode())
    return h.hexdigest()


def entry_key(rel: str, fmt: str, data: bytes, settings: ReadSettings) -> str:
    shaping = {name: _plain(getattr(settings, name)) for name in READER_PARAMS[fmt]}
    parts = [KEY_VERSION, rel, fmt, hashlib.sha256(data).hexdigest(), json.dumps(shaping, sort_keys=True)]
    return hashlib.sha256("\0".join([*parts, code_version(fmt)]).encode()).hexdigest()


def _plain(value):
    if isinstance(value, RowLabels):
        return [value.labelled, value.key_value, value.key_value_headings]
    return asdict(value) if isinstance(value, OcrSettings) else value


class BlockCache:
    """One JSON file per entry under `folder`, in subfolders by the key's first two hex digits (a thousand pages
    would otherwise be a thousand files in one folder)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # no entry, or one damaged on disk: read the file again
            return None

    def put(self, key: str, result: dict) -> None:
        write_text(self._path(key), json.dumps(result, ensure_ascii=False))
