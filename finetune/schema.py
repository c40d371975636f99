"""The shapes of the records the stages pass to each other, and the per-example rules every chat example obeys.

Block (data/interim/blocks.jsonl, written by extract). Kinds are structural: extraction never decides what a block
is about (a spec, a fault, a product); the task file picks blocks by kind, heading and columns.
    id       content hash of (source, kind, title, text)
    source   path relative to the repo plus a location: `data/raw/manual.md#h=Calora/Specifications — CA-24C`,
             `data/raw/manual.pdf#page=3`, `data/raw/catalog.csv#row=14`, `data/raw/qa.jsonl#line=7`; a long section
             cut into parts adds `#part=N` (N from 1)
    kind     one of BLOCK_KINDS
    title    the heading path joined by " / " (a CSV row: the file's stem)
    headings the heading path as a list, the document's H1 first when it has one (a CSV row: [file stem]; a page:
             its heading line's parts)
    text     the block as Markdown-ish plain text: paragraphs, `- ` bullets, `1. ` steps, fenced code verbatim with
             its indentation, inline code in backticks, links reduced to their text
  and per kind:
    section      the prose of one section (paragraphs, unordered lists, blockquotes), one block per section or per
                 part when over extract.max_chars (cut at paragraph, list-item or sentence boundaries, never inside
                 a fenced code block); `items` its bullet items in order (may be empty)
    list         an ordered list; `items` (str, in order), `lead` (the paragraph just before it, "" if none)
    table        any table; `columns` (header cells, a repeated one numbered "Name (3)"), `rows` [{column: cell}]
    definitions  a definition list, glossary or option list: bullets whose every term is marked up (bold, code) or
                 an option flag, or two or more paragraphs in a row of the shape `Term: text` / `Term — text`;
                 `items` [{"term", "definition"}]. Plain `Label: text` bullets stay the `items` of their section.
    code         one code block; `code` (verbatim), `language` ("" if none), `lead` (the paragraph before it)
    row          one CSV row; `columns`, `rows` (a one-element list)
    qa           one imported conversation; `messages` (OpenAI format, the file's own system message, every turn)

Example (data/interim/examples.jsonl, data/processed/{train,val}.jsonl, written by generate and balance):
    id, task, source, block_id, messages [{role, content}, ...], meta {task-specific facts for the format check}
"""

from __future__ import annotations

BLOCK_KINDS = ("section", "list", "table", "definitions", "code", "row", "qa")
ROLES = ("system", "user", "assistant")
EXAMPLE_COLUMNS = ("id", "task", "source", "messages")


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
        if role not in ROLES:
            problems.append(f"message {i} has role {role!r}, expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            problems.append(f"message {i} ({role}) content is {type(content).__name__}, expected a string")
        elif not content.strip():
            problems.append(f"message {i} ({role}) has empty content")
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
