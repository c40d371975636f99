"""Input files line by line, for extract: text read with line-numbered errors (length limit, binary data, UTF-8),
and chat records (a JSONL line, or an element of a JSON array) as OpenAI messages.

A record may be a chat-messages record (`{"messages": [...]}`), alpaca (`instruction`, `input`, `output`) or
sharegpt (`conversations` of `{from, value}`); all three become `[{role, content}, ...]`, every turn and the file's own
system message kept.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path

from finetune.io import TOO_DEEP, InputError, json_line
from finetune.schema import message_problems, quoted

# 1 MB: a long chat example is ~10 kB and minified HTML rarely has 100 kB lines. A longer line is generated or binary
# data, and reading it in pieces keeps memory flat however long it is (a 50 MB one-line file is read 1 MB at a time).
MAX_LINE_BYTES = 1_000_000


def raw_lines(path: Path):
    """(line number, bytes) of each line, reading at most MAX_LINE_BYTES at a time; None for a longer line."""
    with path.open("rb") as f:
        lineno = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(1 << 16)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the line without holding it
                raw = None
            yield lineno, raw


def too_long(rel: str, lineno: int) -> InputError:
    return InputError(
        rel, f"line longer than {MAX_LINE_BYTES:,} bytes: generated or binary data, not a document", lineno
    )


def check_text_file(path: Path, rel: str) -> None:
    """Reject an empty or binary file before reading it as text."""
    if path.stat().st_size == 0:
        raise InputError(rel, "empty file")
    with path.open("rb") as f:
        head = f.read(8192)
    if looks_binary(head):
        nul = head.find(b"\0")
        raise InputError(
            rel, "binary data (a NUL byte), not text: is the file type right?", head[:nul].count(b"\n") + 1
        )


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file are binary data: NUL bytes (git and grep sniff the same way), unless they are
    a stray few in text (one, or at most 1 in 100 bytes) with valid UTF-8 around them. Such a text file is read, and each line
    with a NUL is left out alone (read_text), the smallest unit a skip can drop."""
    nuls = head.count(b"\0")
    if not nuls:
        return False
    if nuls > max(1, len(head) // 100):  # UTF-16 text has one every other byte, an image or archive many
        return True
    try:  # incremental: the head may end inside a UTF-8 sequence
        codecs.getincrementaldecoder("utf-8")().decode(head.replace(b"\0", b""), final=False)
    except UnicodeDecodeError:
        return True
    return False


def raise_it(error: InputError) -> None:
    raise error


def read_text(path: Path, rel: str, reject=raise_it) -> str:
    """The file's text. A bad line (a NUL byte past the sniffed head, invalid UTF-8, over MAX_LINE_BYTES) goes to
    `reject`, which raises it unless the caller skips bad records; a skipped line is left out, the rest is kept."""
    check_text_file(path, rel)
    lines, rejected = [], []

    def bad(error: InputError) -> None:
        rejected.append(error)
        reject(error)

    for lineno, raw in raw_lines(path):
        if raw is None:
            bad(too_long(rel, lineno))
            continue
        if b"\0" in raw:  # check_text_file sniffs the head only; a NUL further down must not reach the text
            bad(InputError(rel, "binary data (a NUL byte) in the line", lineno))
            continue
        try:  # line by line, so the error names the line; a UTF-8 sequence never spans a newline
            lines.append(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            bad(
                InputError(
                    rel, f"not valid UTF-8 ({e.reason} at byte {e.start} of the line); save it as UTF-8", lineno
                )
            )
    if not (text := "".join(lines)).strip():
        # Nothing left but the bad lines (a 20 MB one-line file): the file is left out for the first of them, its
        # real reason, not as an empty file.
        raise rejected[0] if rejected else InputError(rel, "empty file (only white space)")
    return text.replace("\r\n", "\n")


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
            got = t.get("from") if isinstance(t, dict) else t
            if not isinstance(got, str) or got not in SHAREGPT_ROLES:
                raise ValueError(f"conversations[{i}] has from {quoted(got)}, expected one of human, gpt, system")
        messages = [{"role": SHAREGPT_ROLES[t["from"]], "content": t.get("value")} for t in turns]
        # LLaMA-Factory's and axolotl's sharegpt put the system prompt beside the turns, not among them.
        if obj.get("system") and not (messages and messages[0]["role"] == "system"):
            messages.insert(0, {"role": "system", "content": obj["system"]})
        return messages
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


def conversation(raw: bytes) -> list:
    """The messages of one JSONL line; ValueError saying what is wrong with it."""
    return record_messages(json_line(raw))


def record_messages(obj) -> list:
    """The messages of one parsed record (a JSONL line or a JSON array element); ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")  # noqa: TRY004 - rejected like any bad record
    messages = normalise_conversation(obj)
    if problems := message_problems(messages):
        raise ValueError("; ".join(problems))
    return messages


JSON_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's own white space, nothing else


def json_elements(path: Path, rel: str) -> Iterator[tuple[int, int, object]]:
    """(index, line, value) of each element of a JSON array file (alpaca_data.json style), index from 0 as in
    `jq '.[3]'`, line where the element starts.

    Parsed one element at a time, so an error names the element and its line, not only a character offset, and a
    minified one-line file still numbers its elements. Anything that is not one JSON array is an InputError."""
    check_text_file(path, rel)
    # The line limit of every text format holds here too, though the array is parsed whole: a minified array over it
    # is generated data, and reading it whole could take any amount of memory.
    for lineno, raw in raw_lines(path):
        if raw is None:
            raise too_long(rel, lineno)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(rel, f"not valid UTF-8 ({e.reason}); save it as UTF-8", line) from None
    decoder, index = json.JSONDecoder(), 0
    newlines, counted = 0, 0  # lines are counted up to the current position once, as the parse moves forward

    def line_at(pos: int) -> int:
        nonlocal newlines, counted
        newlines += text.count("\n", counted, pos)
        counted = pos
        return newlines + 1

    pos = JSON_SPACE.match(text).end()
    if not text.startswith("[", pos):
        raise InputError(
            rel,
            "expected a JSON array of records ([{...}, {...}]); one record per line is a .jsonl file",
            line_at(pos),
        )
    pos = JSON_SPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        raise InputError(rel, "no records, the array is empty", line_at(pos))
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(
                rel, f"malformed JSON: {e.msg.removesuffix(' at')} at column {e.colno}", e.lineno, f"element {index}"
            ) from None
        except RecursionError:
            raise InputError(rel, TOO_DEEP, line_at(pos), f"element {index}") from None
        yield index, line_at(pos), value
        pos = JSON_SPACE.match(text, end).end()
        if text.startswith("]", pos):
            break
        if not text.startswith(",", pos):
            got = repr(text[pos]) if pos < len(text) else "the end of the file"
            raise InputError(rel, f"expected , or ] after element {index}, got {got}", line_at(pos))
        pos, index = JSON_SPACE.match(text, pos + 1).end(), index + 1
    if (rest := JSON_SPACE.match(text, pos + 1).end()) < len(text):
        raise InputError(rel, "extra data after the array's closing ]", line_at(rest))
