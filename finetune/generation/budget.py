"""Examples cut to the base model's token budget: what validate would call overlong is cut here instead.

extract cuts long sections at extract.max_chars, a guess in characters made before any question exists; real
documents tokenise at 2 to 4 characters a token (code nearer 2), so some examples still came out over
model.max_seq_len and validate stopped the first `dvc repro`. Here every example is measured as validate measures it
(the chat template over system prompt, question and answer, with the base model's tokenizer: validation.frames),
and the block under an example that is over is cut into parts small enough for its answer to fit beside its own
question: a section between paragraphs, lines, sentences (a long fence between its lines, each piece fenced again),
a code block between its lines. Each new part is asked by what it says (documents.parts.part_label), so the parts
of one section never share a question. Then the examples are built again, until none is over or nothing is left
to cut.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable

from finetune.documents.parts import FENCE, cut_lines, cut_text, part_label
from finetune.io import content_id
from finetune.validation.frames import count_tokens

ROUNDS = 4  # a cut is sized from the measured excess, so one round nearly always fits; the rest are for odd cases
# Tokens kept free beyond the measured excess: a part's question names the part (a label of up to
# documents.parts.LABEL_WORDS words, a few tokens each), which the whole section's question did not.
QUESTION_ROOM = 24


def section_source(source: str) -> str:
    """The source of the whole section a part was cut from: "raw/a.md#h=X#part=2.1" -> "raw/a.md#h=X"."""
    return source.split("#part=", 1)[0]


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _unique(label: str, taken: set[str], n: int) -> str:
    """`label`, else (empty or taken) it with the part's number `n`, then with a count, until no other part of
    its section has it: a number alone ("2") may be one an earlier round gave already."""
    out, k = (label if label and label.casefold() not in taken else f"{label} {n}".strip()), 1
    while out.casefold() in taken:
        k += 1
        out = f"{label} {n}.{k}".strip()
    taken.add(out.casefold())
    return out


def _first_sentence(text: str) -> str:
    m = re.search(r"(?<=[.!?:。！？：])\s", text.strip())
    return text.strip()[: m.start()] if m else text.strip()


def share_items(items: list, pieces: list[str]) -> list[list[str]]:
    """Each bullet item of a cut section to the one piece that holds it: the first piece, from the previous item's
    on, with a list line that starts with the item's first line (else the first that holds that line at all).

    In order and once each: an item's words may recur in the prose of an earlier piece, or another item may say
    the same, and a part must not list the steps another part shows."""
    out: list[list[str]] = [[] for _ in pieces]
    at = 0
    seen = [0] * len(pieces)  # where each piece's next list line is looked for: a line lists one item
    for item in items:
        if not isinstance(item, str):
            continue
        head = item.split("\n")[0]
        listed = re.compile(rf"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+{re.escape(head)}", re.MULTILINE)
        found = None
        for j in range(at, len(pieces)):
            if m := listed.search(pieces[j], seen[j]):
                found, seen[j] = j, m.end()
                break
        if found is None:
            found = next((j for j in range(at, len(pieces)) if head in pieces[j]), None)
        if found is not None:
            out[found].append(item)
            at = found
    return out


def cut_block(block: dict, max_chars: int, taken: set[str], first_as_block: bool = False) -> list[dict]:
    """`block` (a section or a code block) as parts of at most max_chars characters, or [block] when it cannot be
    cut. `taken`: the labels already used by the parts of its section, which the new ones are kept apart from.
    first_as_block: a code block alone in its section, whose first piece is asked as the whole block was (its start
    and lead are what the question asked for); else every piece is asked by what it says."""
    base, _, at = block["source"].partition("#part=")
    source, at = base, f"{at}." if at else ""  # part 2 cut again gives 2.1, 2.2, …
    if block["kind"] == "code":
        pieces = cut_lines(block.get("code") or "", max_chars)
        if len(pieces) < 2:
            return [block]
        out = []
        lead = block.get("lead") or ""
        for n, code in enumerate(pieces, 1):
            # Every piece keeps the lead: it says what the whole code does, and a code task may need one. A later
            # piece keeps its first sentence ("A long-running program can watch the folder …"): the details of
            # the rest describe the whole program, and would leave a piece of it no room.
            text = f"```{block.get('language') or ''}\n{code}\n```"
            # A later piece goes by what it says (documents.parts.part_label: a comment it holds, else a line).
            keep = n == 1 and first_as_block
            label = block.get("part", "") if keep else _unique(part_label(text), taken, n)
            new = block | {"source": f"{source}#part={at}{n}", "code": code, "text": text, "part": label}
            if n > 1 and lead:
                new["lead"] = _first_sentence(lead)
            out.append(new | {"id": content_id(new["source"], "code", new["title"], text)})
        return out
    pieces = cut_text(block["text"], max_chars)
    if len(pieces) < 2:
        return [block]
    # A piece of a fence with no prose is no section of its own, as in extract: the code is a block of its own too,
    # which the code tasks read (and cut the same way when it is over).
    pieces = [p for p in pieces if FENCE.sub("", p).strip()]
    out = []
    shared = share_items(block.get("items") or [], pieces)
    for n, (text, items) in enumerate(zip(pieces, shared, strict=True), 1):
        # The first piece is still what the block was asked as; the others are asked by what they say.
        label = block.get("part", "") if n == 1 else _unique(part_label(text), taken, n)
        new = block | {"source": f"{source}#part={at}{n}", "text": text, "items": items, "part": label}
        out.append(new | {"id": content_id(new["source"], "section", new["title"], text)})
    return out


def recut(blocks: list[dict], excess: dict[str, int], tokenizer) -> tuple[list[dict], int]:
    """(blocks, how many were cut): each block in `excess` (block id -> tokens over the budget in its longest
    example) cut so that its text is shorter by that many tokens and QUESTION_ROOM, in proportion to its characters.
    A section's code blocks make one example (builders.code_sections, under its first block's id): over, each of
    them becomes an example of its own, and any that alone is over the room left is cut between its lines."""
    taken: dict[tuple, set[str]] = {}  # per section and kind: a code task never asks a section task's question
    for b in blocks:
        if b.get("part"):
            taken.setdefault((section_source(b["source"]), b.get("kind")), set()).add(b["part"].casefold())
    size = {b["id"]: _tokens(tokenizer, (b.get("code") if b["kind"] == "code" else b.get("text")) or "")
            for b in blocks if b["id"] in excess or b.get("kind") == "code"}  # fmt: skip
    # A code example's room: its snippets' tokens less the excess, shared by every code block of its source.
    code_room: dict[str, int] = {}
    for b in blocks:
        if b.get("kind") == "code" and b["id"] in excess:
            snippets = sum(size[c["id"]] for c in blocks if c.get("kind") == "code" and c["source"] == b["source"])
            code_room[b["source"]] = snippets - excess[b["id"]] - QUESTION_ROOM
    shared = Counter(b["source"] for b in blocks if b.get("kind") == "code")
    out, cut, apart = [], 0, Counter()
    for b in blocks:
        kind, labels = b.get("kind"), taken.setdefault((section_source(b["source"]), b.get("kind")), set())
        if kind == "code" and b["source"] in code_room:
            room, tokens = code_room[b["source"]], size[b["id"]]
            pieces = (
                cut_block(
                    b, max(1, math.floor(len(b["code"]) / math.ceil(tokens / room))), labels, shared[b["source"]] == 1
                )
                if 0 < room < tokens
                else [b]
            )
            if len(pieces) == 1 and shared[b["source"]] == 1:  # alone and uncuttable (one long line): as it is
                out.append(b)
                continue
            if len(pieces) == 1:  # small enough alone: an example of its own, asked by what its lead says
                apart[b["source"]] += 1
                said = part_label(b["lead"]) if (b.get("lead") or "").strip() else part_label(b["text"])
                label = _unique(said, labels, apart[b["source"]])
                base, _, at = b["source"].partition("#part=")
                source = f"{base}#part={at + '.' if at else ''}c{apart[b['source']]}"
                pieces = [
                    b | {"source": source, "part": label, "id": content_id(source, "code", b["title"], b["text"])}
                ]
            cut += 1
            out += pieces
            continue
        if b["id"] not in excess or kind != "section":
            out.append(b)
            continue
        tokens = size[b["id"]]
        target = tokens - excess[b["id"]] - QUESTION_ROOM
        if target <= 0:  # the question and system prompt alone leave no room: nothing a cut could do
            out.append(b)
            continue
        # Parts of about equal size, each at most `target` tokens at this block's own characters per token.
        pieces = cut_block(b, max(1, math.floor(len(b["text"]) / math.ceil(tokens / target))), labels)
        cut += len(pieces) > 1
        out += pieces
    return out, cut


def fit(
    blocks: list[dict], build: Callable[[list[dict]], tuple[list[dict], dict]], tokenizer, max_seq_len: int
) -> tuple[list[dict], list[dict], dict, dict]:
    """(blocks, examples, build's counts, counts): `build` (blocks -> (examples, counts)) run until no example is
    over max_seq_len tokens or no block under one can be cut further. counts: `cut_to_fit` (blocks cut),
    `dropped_over_budget` (examples still over, left out)."""
    cut_total = 0
    for attempt in range(ROUNDS + 1):
        examples, counts = build(blocks)
        lengths, _ = count_tokens(tokenizer, [e["messages"] for e in examples])
        over = {}
        for e, n in zip(examples, lengths, strict=True):
            if n is not None and n > max_seq_len:
                over[e["block_id"]] = max(over.get(e["block_id"], 0), n - max_seq_len)
        if not over or attempt == ROUNDS:
            break
        blocks, cut = recut(blocks, over, tokenizer)
        if not cut:
            break
        cut_total += cut
    # What no cut could bring under the budget (one line of code longer than it, a table cell of a page, a lead and
    # question that fill it alone) is left out and counted: validate would stop the whole run on it.
    kept = [e for e, n in zip(examples, lengths, strict=True) if n is None or n <= max_seq_len]
    return blocks, kept, counts, {"cut_to_fit": cut_total, "dropped_over_budget": len(examples) - len(kept)}
