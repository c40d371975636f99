"""Input files line by line, for extract: text read with line-numbered errors (length limit, binary data, UTF-8),
chat records (a JSONL line, or an element of a JSON array) as OpenAI messages, and the structure of plain text
(text_events: the headings and option lists of a reStructuredText README or a man page rendered to text).

A record may be a chat-messages record (`{"messages": [...]}`), alpaca (`instruction`, `input`, `output`) or
sharegpt (`conversations` of `{from, value}`); all three become `[{role, content}, ...]`, every turn and the file's own
system message kept.
"""

from __future__ import annotations

import codecs
import json
import re
import textwrap
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


# --- plain text's structure -------------------------------------------------------------------------------------
# A plain-text file marks its structure by layout alone: reStructuredText and setext underline a heading with one
# repeated punctuation mark (its overline too, in reST), and a man page rendered to text (`man -P cat`) sets its
# section names in capitals at the margin, subsection names at 3 columns, its text at 7, and each option as a
# "tagged paragraph": the option at the text's column, its description indented under it.
_ADORNMENT = re.compile(r"""^([=\-~^"'`#*+_.:<>])\1{2,}\s*$""")
_LIST_ITEM = re.compile(r"^([-*+•]|\d{1,2}[.)])\s+(\S.*)$")
_DIRECTIVE = re.compile(r"^\.\.\s+(?:([\w:-]+)::|_|\[|\|)")  # `.. code-block::`, a target `.. _x:`, a comment
_SENTENCE_END = re.compile(r"[.!?,;:]$")  # a heading ends on none of these
_MAX_HEADING_WORDS = 8
_MAX_TERM_WORDS = 4  # a tagged paragraph's term: "ESC-7", "/etc/passwd", "generic name (or link)"


def _inline_rst(text: str) -> str:
    """reStructuredText's inline markup as the Markdown-ish text of a block: `text <url>`_ and `name`_ -> their
    text, ``code`` -> `code`, a reference's trailing "_" (node-celery_) and |substitutions| gone."""
    text = re.sub(r"``([^`]+)``", "\0\\1\0", text)  # literals first, kept from the rules below
    text = re.sub(r"`([^`<]+?)\s*<[^>]+>`__?", r"\1", text)
    text = re.sub(r"`([^`]+)`__?", r"\1", text)
    text = re.sub(r"(?<!\w)([A-Za-z][\w-]*?)__?(?=[\s.,;:)]|$)", r"\1", text)
    text = re.sub(r"(?:^|\s)\|[^|\s][^|]*\|_?(?=\s|$)", "", text).replace("\0", "`")
    return text.strip()


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _capitals(line: str) -> bool:
    """A line of capitals only ("OPTIONS", "EXIT STATUS", "SIEHE AUCH"): at least 3 letters, none lower-case."""
    letters = [c for c in line if c.isalpha()]
    words = line.split()
    return (
        len(letters) >= 3
        and not any(c.islower() for c in letters)
        and len(words) <= _MAX_HEADING_WORDS
        and not _SENTENCE_END.search(line.strip())
    )


def _running_line(line: str) -> bool:
    """A page's running header or footer: text set in three columns ("COL(1)   User Commands   COL(1)")."""
    return len(re.findall(r"\S\s{3,}\S", line.strip())) >= 2


def _paragraphs(lines: list[str]) -> list[list[str]]:
    groups, run = [], []
    for line in [*lines, ""]:
        if line.strip():
            run.append(line.rstrip())
        elif run:
            groups.append(run)
            run = []
    return groups


def _heading(group: list[str], styles: list[tuple]) -> tuple[int, str] | None:
    """(level, text) when a paragraph is an underlined heading; `styles` collects the adornments in the order
    first seen, which is what their levels are in reStructuredText."""
    over = len(group) == 3 and _ADORNMENT.match(group[0]) and _ADORNMENT.match(group[2])
    if over or (len(group) == 2 and _ADORNMENT.match(group[1]) and not _ADORNMENT.match(group[0])):
        text = group[1] if over else group[0]
        if len(group[-1].strip()) >= 0.7 * len(text.strip()) and len(text.split()) <= 2 * _MAX_HEADING_WORDS:
            style = (group[-1].strip()[0], bool(over))
            if style not in styles:
                styles.append(style)
            return styles.index(style) + 1, text.strip()
    return None


def text_events(text: str) -> list[tuple]:
    """The events of finetune/documents/markup.html_events for plain text, when its layout marks headings: an
    underlined line, or a line of capitals at the margin (a man page's NAME, OPTIONS; a text's own section names),
    above text that is indented or not. Options and tagged paragraphs become glossary entries, lists items, text
    after a lead-in ("::", ":") that is indented deeper fenced code. [] when the text has no heading: then it is
    read paragraph by paragraph (readers.txt_blocks)."""
    from finetune.documents.markup import FLAGS

    # groff hyphenates a word at a line's end with U+2010 ("success‐" / "fully"): one word again
    lines = re.sub(r"(?<=\w)\u2010\n[ \t]*(?=\w)", "", text).splitlines()
    filled = [n for n, ln in enumerate(lines) if ln.strip()]
    for n in filled[:1] + filled[-1:]:  # a rendered man page's running header and footer
        if _running_line(lines[n]):
            lines[n] = ""
    groups = _paragraphs(lines)
    # The column the text is set at: where most lines are, but for the options' (a man page's descriptions, indented
    # under each option, outnumber its other lines).
    indents = [_indent_of(ln) for g in groups if not FLAGS.match(g[0].strip()) for ln in g]
    body = max(set(indents), key=indents.count) if indents else 0
    events: list[tuple] = []
    styles: list[tuple] = []
    pairs: list[tuple[str, str]] = []
    items: list[str] = []
    lead_in, code_next, ordered = "", False, False

    def flush() -> None:
        if pairs:
            events.append(("dl", list(pairs)))
            pairs.clear()
        if items:
            events.append(("ol" if ordered else "ul", list(items), [None] * len(items)))
            items.clear()

    queue = list(reversed(groups))
    while queue:
        g = queue.pop()
        first, indent = g[0].strip(), _indent_of(g[0])
        h = _heading(g, styles)
        # A heading at the margin (or a subsection's column) left of the text, its text on the next lines or after
        # a blank one (a man page's "NAME" over "       col - filter …"); capitals alone on their line where the
        # text is not indented.
        short = len(first.split()) <= _MAX_HEADING_WORDS and not _SENTENCE_END.search(first)
        plain = short and not FLAGS.match(first) and not _LIST_ITEM.match(first) and not _DIRECTIVE.match(first)
        alone = len(g) == 1 or _indent_of(g[1]) > indent
        if not h and plain and alone and (indent < body or (body == 0 and len(g) == 1 and _capitals(first))):
            h = (2 if indent == 0 else 3, first)  # under the document's title (its file name): level 1
        if h:
            flush()
            events.append(("h", h[0], _inline_rst(h[1])))
            lead_in = ""
            if not _heading(g, []) and len(g) > 1:
                queue.append(g[1:])
            continue
        if (m := _DIRECTIVE.match(first)) and indent <= body:
            code_next = bool(m[1]) and "code" in m[1]
            continue  # a directive's name and options, a link target, a comment: markup, not text
        deeper = indent > _indent_of(lead_in) if lead_in else False
        if (code_next or (lead_in.rstrip().endswith(":") and deeper)) and indent > 0:
            flush()
            # The paragraphs after it that are indented as deep or deeper are the same code, blank lines and all
            block = list(g)
            while queue and min(_indent_of(ln) for ln in queue[-1]) >= indent:
                block += ["", *queue.pop()]
            events.append(("code", textwrap.dedent("\n".join(block)).strip("\n"), ""))
            code_next, lead_in = False, ""
            continue
        code_next = False
        # A tagged paragraph: its term's lines (an option's spellings, one a line: "-V" over "--version") at its
        # column, its description indented deeper under them.
        k = next((j for j, ln in enumerate(g) if _indent_of(ln) > indent), len(g))
        if 1 < k < len(g) and all(FLAGS.match(ln.strip()) and len(ln.split()) <= 3 for ln in g[:k]):
            first, g = (
                ", ".join(ln.strip() for ln in g[:k]),
                [g[0][:indent] + ", ".join(ln.strip() for ln in g[:k]), *g[k:]],
            )
        tagged = len(g) > 1 and _indent_of(g[1]) > indent and len(first.split()) <= _MAX_HEADING_WORDS
        option = FLAGS.match(first)
        if option and (tagged or re.match(r"\s{2,}\S", first[option.end() :])):
            # "-l, --lines number" over its description (the whole line is the term: its argument too), or
            # "-h  Show the help." on one line
            term, rest = (first, g[1:]) if tagged else (option.group(), [first[option.end() :], *g[1:]])
            if definition := " ".join(" ".join(rest).split()):
                if items:
                    flush()
                pairs.append((term, _inline_rst(definition)))
                continue
        # A term is a few words; a first line set in columns ("cp  CP  CPU usage in …") is a row of a table.
        term_like = len(first.split()) <= _MAX_TERM_WORDS and not re.search(r"\S\s{2,}\S", first)
        if tagged and term_like and not _SENTENCE_END.search(first) and not _LIST_ITEM.match(first):
            if items:
                flush()
            pairs.append((_inline_rst(first), _inline_rst(" ".join(" ".join(g[1:]).split()))))
            continue
        if m := _LIST_ITEM.match(first):
            if pairs:
                flush()
            ordered = items == [] and m[1][0].isdigit() or (bool(items) and ordered)
            for ln in g:  # items on consecutive lines ("5) Tag it." / "6) Push it."), each with its wrapped lines
                if (m := _LIST_ITEM.match(ln.strip())) and _indent_of(ln) <= indent:
                    items.append(m[2])
                else:
                    items[-1] += " " + ln.strip()
            items[-len(g) :] = [_inline_rst(i) for i in items[-len(g) :]]
            continue
        flush()
        # A reST line block ("| text") is its text; "::" alone introduces the literal block that follows it.
        paragraph = _inline_rst(" ".join(" ".join(re.sub(r"^\s*\|\s", "", ln) for ln in g).split()))
        if paragraph == "::":
            lead_in = g[0]
            continue
        if not paragraph.strip("| "):
            continue  # a row of substitutions (|build-status| |coverage|): badges, pictures in the rendered page
        if paragraph.endswith("::"):
            paragraph = paragraph[:-1]  # reST's "::" is a colon before a literal block
        events.append(("para", paragraph, None))
        lead_in = g[0][:indent] + paragraph
    flush()
    return events if any(ev[0] == "h" for ev in events) else []
