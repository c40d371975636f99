"""Reading and writing the pipeline's files: JSONL/JSON with line-numbered errors, atomic outputs, logging."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator


class InputError(Exception):
    """Bad input a user must fix. Printed as one line `PATH:LINE: what is wrong`, never as a traceback."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None, where: str | None = None):
        self.path, self.line, self.where, self.message = str(path), line, where, message
        loc = f":{line}" if line is not None else ""
        loc += f" ({where})" if where else ""
        super().__init__(f"{self.path}{loc}: {message}")


# What a document or a file name may hold that a terminal would act on: C0 and C1 controls (ESC starts ANSI colour and
# window-title sequences, a newline would let a crafted name print a line of its own), Unicode line separators,
# bidirectional overrides (text shown in another order than it reads), and lone surrogates (a file name that is not
# UTF-8, which stderr could not even encode).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` safe to print on one terminal line: every control character escaped as Python writes it (\\x1b, \\n)."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)


def log(stage: str, message: str) -> None:
    # stderr, so stdout stays free for anything a script may want to parse. A message quotes file names, headings
    # and records, so it is printed escaped: whatever a document holds, it is one line and plain text.
    print(f"[{stage}] {printable(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def warnings_named(stage: str, path: str, library: str, most: int = 5) -> Iterator[None]:
    """Log what `library` warns about while reading `path` (its logger, and Python warnings) as `[stage] PATH:
    library: message` lines, each distinct message once with its count, at most `most` of them: pypdf alone would
    print "EOF marker not found" naming no file, once per broken object."""
    said: Counter[str] = Counter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said[record.getMessage()] += 1

    logger, handler = logging.getLogger(library), Collect(logging.WARNING)
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            said[f"{w.category.__name__}: {w.message}"] += 1
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        for message, n in said.most_common(most):
            log(stage, f"{path}: {library}: {message}" + (f" ({n} times)" if n > 1 else ""))
        if len(said) > most:
            log(stage, f"{path}: {library}: {len(said) - most} more kinds of warning")


class Progress:
    """A tqdm bar where stderr is a terminal; where it is a log (`dvc repro > log`, CI), no bar, whose hundreds of
    carriage-return updates would fill the log, but one `[stage] what: N units in S s` line when the work ends."""

    def __init__(self, stage: str, desc: str, total: int | None = None, unit: str = "it", units: str | None = None):
        self.stage, self.desc, self.unit, self.units = stage, desc, unit, units or unit + "s"
        self.n, self.started, self.bar = 0, time.perf_counter(), None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"[{stage}] {desc}", unit=unit, file=sys.stderr)

    def update(self, n: int = 1, **postfix) -> None:
        self.n += n
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(refresh=False, **postfix)
            self.bar.update(n)

    def close(self, finished: bool = True) -> None:
        if self.bar is not None:
            self.bar.close()
        elif finished:  # a failure says what went wrong instead
            seconds = time.perf_counter() - self.started
            log(self.stage, f"{self.desc}: {self.n} {self.unit if self.n == 1 else self.units} in {seconds:.1f} s")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.close(finished=exc_type is None)


def progress(items: Iterable, stage: str, desc: str, unit: str = "it", units: str | None = None) -> Iterator:
    """`items`, under a Progress."""
    total = len(items) if hasattr(items, "__len__") else None
    with Progress(stage, desc, total, unit, units) as bar:
        for item in items:
            yield item
            bar.update()


def content_id(*parts: str) -> str:
    """Stable id from content: the same text always gets the same id, on any machine."""
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8"))
    return h.hexdigest()[:16]


TOO_DEEP = "JSON nested too deeply to read (arrays or objects about 1,000 levels deep): not a record a person wrote"


def json_line(raw: bytes) -> dict:
    """One JSONL line (bytes, newline or not) as a JSON object; ValueError saying what is wrong with it.

    The one decoder of every JSONL reader: read_jsonl turns the error into an InputError naming file and line,
    `finetune verify data` lists it and reads on, extract rejects the record. Lines arrive as bytes because a
    text-mode file decodes in chunks, so a bad byte would be blamed on the line being read when its chunk was
    decoded, not on the line that holds it; a UTF-8 sequence never spans a newline.
    """
    try:
        # A byte-order mark (Windows editors write one) is no JSON; the newline would make a cut-off line report
        # column 1.
        obj = json.loads(raw.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n"))
    except UnicodeDecodeError as e:
        raise ValueError(f"not valid UTF-8 ({e.reason} at byte {e.start} of the line)") from None
    except json.JSONDecodeError as e:
        # json's "Invalid control character at" ends in "at" itself.
        raise ValueError(f"malformed JSON: {e.msg.removesuffix(' at')} at column {e.colno}") from None
    except RecursionError:  # arrays or objects nested ~1,000 deep: the decoder recurses per level
        raise ValueError(TOO_DEEP) from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")  # noqa: TRY004 - callers catch one type
    return obj


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a malformed line raises InputError naming it."""
    p = Path(path)
    try:
        f = p.open("rb")
    except FileNotFoundError:
        raise InputError(p, "file not found") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, json_line(raw)
            except ValueError as e:
                raise InputError(p, str(e), lineno) from None


def load_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj in read_jsonl(path)]


def load_records(path: str | os.PathLike, fields: tuple[str, ...], what: str) -> list[dict]:
    """load_jsonl, where every record must hold `fields` as strings: a file of other records (conversations given
    where examples belong, say) stops with one line naming its first such line, not with a KeyError later."""
    records = []
    for n, obj in read_jsonl(path):
        if missing := [f for f in fields if not isinstance(obj.get(f), str)]:
            raise InputError(path, f"not {what}: no string {', '.join(missing)} (was this file written by the stage "
                             f"before?)", n)  # fmt: skip
        records.append(obj)
    return records


def sweep_leftovers(dst: Path) -> None:
    """Remove what a killed (SIGKILL, power cut) write of `dst` left behind: its temporaries and a moved-aside old dir.

    No `except` runs on SIGKILL, so the temporary stays; for a model directory that can be gigabytes. The pattern is
    mkstemp/mkdtemp's exact shape (8 characters of [a-z0-9_]), so another output's temporaries never match. Two
    writers of one output at once would sweep each other's: DVC's lock allows one `dvc repro` per repository.
    """
    if not dst.parent.is_dir():
        return  # nothing was ever written there
    leftover = re.compile(rf"\.{re.escape(dst.name)}\.([a-z0-9_]{{8}}\.tmp|old)")
    for p in dst.parent.iterdir():
        if not leftover.fullmatch(p.name):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path`, on any error it is removed.

    The temporary lives in the same directory so the final rename is atomic, and DVC never sees a half-written out.
    """
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(dst)
    # Ctrl-C held off from the temporary's creation until the `try` that removes it: a KeyboardInterrupt raised in
    # between (it lands between any two bytecodes) would leave the temporary behind.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
            os.close(fd)
            tmp = Path(name)
    except BaseException:
        # A folder that cannot be written: Ctrl-C must not stay blocked for the rest of the process, nor for every
        # process it starts after (a blocked mask is inherited).
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        # mkstemp/mkdtemp create owner-only files; give the output the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod((0o777 if is_dir else 0o666) & ~umask)
        yield tmp
        if is_dir:
            if dst.exists():
                # A directory cannot be replaced by rename in one step: move the old one aside first.
                old = dst.with_name(f".{dst.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                dst.rename(old)
                tmp.rename(dst)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(dst)
        else:
            os.replace(tmp, dst)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file another stage wrote; missing or malformed is one line naming it and `what` it should hold."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, f"not found: the {what} (run `dvc repro` first)") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON: {e.msg}", e.lineno) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
