"""A later part of a cut section asked as the next turn of a conversation about the section, not alone.

A section too long for one answer is cut into parts (extract.max_chars, then generate's token budget), and each part
after the first was asked by a clause of its own: "What does the documentation say about Recap ("Coming back to
the previous code…")?", a question no user asks (#19: 5 of 25 in a strict read of READMEs). A user who wants more
asks for more: with `follow_up` phrasings in its task ("What else should I know about {heading}?"), such a part is
asked after the part before it, whose question and answer are the conversation so far. Where that conversation is
over the budget, or the task has no such phrasings, or the part is in another language than they are, the part
keeps its own question.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from finetune.generation.budget import section_source
from finetune.generation.builders import Item, heading_fields
from finetune.generation.examples import example, name_in_question, phrasings, question_text, says
from finetune.generation.taskfile import TaskFile


def _program(source: str) -> str:
    """The code block a piece of code was cut from: "…#part=c1.2" of "…#part=c1". The pieces of one program go on
    from each other; a section's code blocks asked apart ("c1", "c2") are different programs."""
    at = source.partition("#part=")[2]
    return f"{section_source(source)}#{at.rpartition('.')[0]}"


def previous_parts(blocks: list[dict]) -> dict[str, str]:
    """Block id -> the id of the part before it (document order), for every part after a section's first: the
    section text before it, or the piece of its own program before it."""
    out, last = {}, {}
    for b in blocks:
        source = b.get("source", "")
        key = (_program(source) if b.get("kind") == "code" else section_source(source), b.get("kind"))
        if "#part=" in source and b.get("part") and key in last:
            out[b["id"]] = last[key]
        last[key] = b["id"]
    return out


def ask_in_turn(
    examples: list[dict],
    blocks: list[dict],
    taskfile: TaskFile,
    seed: int,
    pattern: str,
    fits: Callable[[list[dict]], bool],
) -> tuple[list[dict], dict]:
    """(examples, counts): each example of a later part whose task has follow_up phrasings, asked after its
    section's previous part when that conversation `fits` the budget. `pattern`: generate.name_document, for a
    follow-up of a question that named its document. counts: asked_in_turn, in_turn_over_budget."""
    by_id = {b["id"]: b for b in blocks}
    before = previous_parts(blocks)
    # (task, block id) -> the block's first example as it is kept: the turn the next part's follow-up comes after.
    # A task's examples are in document order, so a part's comes after the part before it.
    first: dict[tuple[str, str], dict] = {}
    out, asked, over, seen = [], 0, 0, set()

    def keep(e: dict) -> None:
        first.setdefault((e["task"], e["block_id"]), e)
        out.append(e)

    for e in examples:
        task = taskfile.tasks.get(e["task"])
        block = by_id.get(e["block_id"])
        prev = first.get((e["task"], before.get(e["block_id"], "")))
        said = phrasings(task, block, taskfile) if task and block else None
        if not (task and task.follow_up and prev and said and said[0] == "questions"):
            keep(e)
            continue
        fields = heading_fields(block, task.blocks)
        rng = random.Random(f"{seed}|in turn|{e['id']}")
        where = f"tasks.{e['task']}.follow_up"
        question = question_text(rng.choice(task.follow_up), Item(fields, ""), taskfile, where, block["source"])
        system, *_, prev_question, prev_answer = prev["messages"]
        messages = [system, prev_question, prev_answer, {"role": "user", "content": f"{task.prefix} {question}"}]
        new = example(e["task"], e["source"], e["block_id"], [*messages, e["messages"][-1]], e["meta"])
        if says(e["messages"][-2]["content"], fields["document"]):
            new = name_in_question(new, fields["document"], pattern)  # named alone, so named in turn
        if not fits(new["messages"]):
            over += 1
            keep(e)
            continue
        if new["id"] not in seen:  # two phrasings of one part may become the same follow-up
            seen.add(new["id"])
            asked += 1
            keep(new)
    return out, {"asked_in_turn": asked, "in_turn_over_budget": over}
