"""The shapes of the records the stages pass to each other, and the per-example rules every chat example obeys.

Block (data/interim/blocks.jsonl, written by extract). Kinds are structural: extraction never decides what a block
is about (a spec, a fault, a product); the task file picks blocks by kind, heading and columns.
    id       content hash of (source, kind, title, text)
    source   path relative to the repo plus a location: `data/raw/manual.md#h=Calora/Specifications — CA-24C`,
             `data/raw/manual.pdf#page=3` (the page a section starts on), `data/raw/catalog.csv#row=14`, `data/raw/qa.jsonl#line=7`; a long section
             cut into parts adds `#part=N` (N from 1), and generate cuts a block over the token budget the same way
             (`#part=N.M`, finetune/generation/budget.py)
    kind     one of BLOCK_KINDS
    title    the heading path joined by " / " (a CSV row: the file's stem)
    headings the heading path as a list, the document's H1 first when it has one (a CSV row: [file stem]; a scanned
             page: its heading line's parts; a PDF: its name first, from its metadata Title, its outline's one
             root, a title page's title, the first part all its headings share, or its file stem, then the
             outline's or the type's headings, documents/pdf.py)
    document the document's name (Markdown, HTML): its front matter `title:` or <title>, else its first heading
             unless that is one of extract.not_titles ("Contents"), else the file's stem; questions name it
    text     the block as Markdown-ish plain text: paragraphs, `- ` bullets, `1. ` steps, fenced code verbatim with
             its indentation, inline code in backticks, links reduced to their text
  and per kind:
    section      the prose of one section (paragraphs, unordered lists, blockquotes), one block per section or per
                 part when over extract.max_chars (cut at paragraph, list-item or sentence boundaries, inside a
                 fenced code block only between its lines, each piece fenced again: finetune/documents/parts.py);
                 `items` its bullet items in order (may be empty); a part has `part`, what it is about (its bold
                 lead or first clause, "" for the first part), which its questions ask by
    list         an ordered list; `items` (str, in order), `lead` (the paragraph just before it, "" if none)
    table        any table; `columns` (header cells, a repeated one numbered "Name (3)"), `rows` [{column: cell}]
    definitions  a definition list, glossary or option list: bullets whose every term is marked up (bold, code) or
                 an option flag, or two or more paragraphs in a row of the shape `Term: text` / `Term — text`;
                 `items` [{"term", "definition"}]. Plain `Label: text` bullets stay the `items` of their section.
    code         one code block; `code` (verbatim), `language` ("" if none), `lead` (the paragraph before it)
    row          one CSV row; `columns`, `rows` (a one-element list)
    qa           one imported conversation; `messages` (OpenAI format, the file's own system message, every turn)

Example (data/interim/examples.jsonl from generate, data/interim/{train,val}.jsonl from balance, and the checked
data/processed/{train,val}.jsonl from validate):
    id, task, source, block_id, messages [{role, content}, ...], meta {task-specific facts for the format check}
"""

from __future__ import annotations

BLOCK_KINDS = ("section", "list", "table", "definitions", "code", "row", "qa")
ROLES = ("system", "user", "assistant")
EXAMPLE_COLUMNS = ("id", "task", "source", "messages")


def quoted(value, limit: int = 60) -> str:
    """A value from a record, for a message: a list or object by its type (its repr could be as long as the file, or
    recurse past Python's limit), anything else as Python writes it, cut to `limit` characters."""
    if isinstance(value, (list, dict)):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def message_problems(messages) -> list[str]:
    """What is wrong with one conversation, in words a user can act on; empty when it is a valid training example."""
    if not isinstance(messages, list) or not messages:
        return ["`messages` must be a non-empty list"]
    problems = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"message {i} is not an object")
            continue
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or role not in ROLES:
            problems.append(f"message {i} has role {quoted(role)}, expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            problems.append(f"message {i} ({role}) content is {type(content).__name__}, expected a string")
        elif not content.strip():
            problems.append(f"message {i} ({role}) has empty content")
        elif "\x00" in content:  # an escaped \u0000: binary data, never text a model should learn
            problems.append(f"message {i} ({role}) holds a NUL character")
    if problems:
        return problems
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        problems.append("a system message may only come first")
    turns = roles[1:] if roles[0] == "system" else roles
    if not turns:
        problems.append("no user or assistant turn (system message only)")
        return problems
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    if turns != expected:
        problems.append(f"roles must alternate user, assistant, …; got {', '.join(turns)}")
    elif turns[-1] != "assistant":
        problems.append("the last turn must be the assistant's")
    return problems


def example_problems(record) -> list[str]:
    """Problems of one example record: required fields and their types, then its conversation."""
    if not isinstance(record, dict):
        return ["an example must be a JSON object"]
    problems = [f"missing field `{c}`" for c in EXAMPLE_COLUMNS if c not in record]
    for c in ("id", "task", "source"):
        if c in record and not (isinstance(record[c], str) and record[c]):
            problems.append(f"`{c}` must be a non-empty string")
    if "messages" in record:
        problems += message_problems(record["messages"])
    return problems


# Degenerate answers: well-formed, yet harmful to train on. Four copies, not three: "no, no, no" is still a figure of
# speech, while one phrase four times over filling half an answer is a generation loop or a copy-paste accident.
MIN_REPEATS = 4
SHOW_PHRASE = 60  # characters of a repeated phrase quoted in a problem


def _borders(words: list[str]) -> list[int]:
    """Knuth-Morris-Pratt prefix function: for each prefix, the length of its longest proper prefix that is also its
    suffix. A prefix of length L is then a phrase of L - border words said L / (L - border) times over."""
    border = [0] * len(words)
    for i in range(1, len(words)):
        k = border[i - 1]
        while k and words[i] != words[k]:
            k = border[k - 1]
        border[i] = k + (words[i] == words[k])
    return border


def repeated_phrase(text: str) -> tuple[str, int] | None:
    """(phrase, times) when one phrase said at least MIN_REPEATS times in a row fills at least half of `text` (a
    short lead-in before a loop, or a tail after it, still counts); None otherwise. Words compare case-insensitively."""
    original = text.split()
    words = [w.casefold() for w in original]
    n = len(words)
    # A loop of >= 4 copies over >= half the words leaves at most n - 3n/8 distinct words: prose never gets here, so
    # the linear scan below runs only on suspects.
    if n < MIN_REPEATS or 3 * len(set(words)) > 2 * n:
        return None
    found = None
    for seq, forward in ((words, True), (words[::-1], False)):  # the loop at the start, then the loop at the end
        border = _borders(seq)
        for length in range(n, 0, -1):  # the longest periodic run first
            period = length - border[length - 1]
            if length // period >= MIN_REPEATS:
                if 2 * length >= n and (found is None or length > found[0]):
                    phrase = original[:period] if forward else original[n - period :]
                    found = (length, phrase, length // period)
                break
    if found is None:
        return None
    _, phrase, times = found
    return " ".join(phrase), times


def repetition_problem(answer: str) -> str:
    """'' for a sound answer, else which phrase it repeats and how often."""
    if (found := repeated_phrase(answer)) is None:
        return ""
    phrase, times = found
    shown = phrase if len(phrase) <= SHOW_PHRASE else phrase[: SHOW_PHRASE - 1] + "…"
    return f"the answer is one phrase repeated {times:,} times: {shown!r}"


def answer_problems(answer: str, max_chars: int | None = None, cap_name: str = "the cap") -> list[str]:
    """What makes one (well-formed) assistant answer a degenerate training target; empty when there is nothing.
    `cap_name` names the knob that sets max_chars (None: no cap), so the words say what to change."""
    problems = []
    if max_chars is not None and len(answer) > max_chars:
        problems.append(f"the answer has {len(answer):,} characters, more than {cap_name} {max_chars:,}")
    if repeated := repetition_problem(answer):
        problems.append(repeated)
    return problems
