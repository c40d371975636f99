"""Blocks -> chat examples, one task type at a time from the registry in finetune.generation.tasks.

Every example is {id, task, source, block_id, messages, meta}: a system prompt, the user question with its task
prefix (`[SPEC] …`), and the answer built from the block. Phrasings are chosen by a seeded RNG keyed on the fact,
so adding a block never changes the phrasing of another.
"""

from __future__ import annotations

import random

from finetune.io import InputError, content_id
from finetune.params import Generate


def example(task: str, source: str, block_id: str, system: str, prompt: str, answer: str, meta: dict) -> dict:
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": answer},
    ]
    return {
        "id": content_id(task, source, prompt, answer),
        "task": task,
        "source": source,
        "block_id": block_id,
        "messages": messages,
        "meta": meta,
    }


def examples_for(task, block: dict | None, gparams: Generate) -> list[dict]:
    from finetune.generation.tasks import refusal_items

    prefix = gparams.prefixes[task.name]
    items = task.items(block) if block is not None else refusal_items()
    out = []
    for i, item in enumerate(items):
        source = block["source"] if block is not None else f"finetune/generation/tasks.py#refusal={i + 1}"
        block_id = block["id"] if block is not None else content_id("refusal", item.fields["question"])
        rng = random.Random(f"{gparams.seed}|{task.name}|{block_id}|{i}")
        k = min(gparams.phrasings_per_item, len(task.phrasings))
        answer, meta = item.answer, dict(item.meta)
        if task.name == "REFUSAL":
            answer, meta = gparams.refusal, {"refusal": gparams.refusal}
        for phrasing in rng.sample(task.phrasings, k):
            prompt = f"{prefix} {phrasing.format(**item.fields)}"
            out.append(example(task.name, source, block_id, gparams.system_prompt, prompt, answer, meta))
    return out


def run(blocks: list[dict], gparams: Generate) -> list[dict]:
    from finetune.generation.tasks import TASKS

    unknown = [t for t in gparams.tasks if t not in TASKS]
    if unknown:
        raise InputError("params.yaml", f"generate.tasks has unknown task(s) {unknown}; known: {sorted(TASKS)}")
    examples = []
    for name in gparams.tasks:
        task = TASKS[name]
        if not task.kinds:
            examples += examples_for(task, None, gparams)
            continue
        for block in blocks:
            if block["kind"] in task.kinds:
                examples += examples_for(task, block, gparams)
    # Two phrasings can coincide after formatting (e.g. "{question}"): keep one of each id.
    seen, unique = set(), []
    for e in examples:
        if e["id"] not in seen:
            seen.add(e["id"])
            unique.append(e)
    return unique
