"""What generate asks a teacher LLM for pairs, and how its replies are read.

Two requests: the pairs (a task's description and seed examples, then one passage: "write N question/answer pairs
from it, as JSON") and the judge ("does this passage support this answer to this question?", as a JSON verdict).
Both ask for JSON through `response_format` with a JSON schema where the server supports it (vLLM, OpenAI); the
readers take any reply all the same: the first JSON value in it, with or without a code fence or chatter around it.
"""

from __future__ import annotations

import json
import re

from finetune.generation.taskfile import TeacherTask

PAIRS_SCHEMA = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["pairs"],
    "additionalProperties": False,
}
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"supported": {"type": "boolean"}},
    "required": ["supported"],
    "additionalProperties": False,
}

PAIRS_INSTRUCTION = (
    "You write question/answer pairs for training an assistant, from one passage of its documentation.\n"
    "What the pairs are for: {description}\n"
    "Write {n} pairs about different things the passage says. Each answer must be stated in the passage, in its "
    "words: no outside knowledge, nothing the passage does not say. Each question must make sense without the "
    "passage in front of the reader: name what it is about.\n"
    'Reply with JSON only: {{"pairs": [{{"question": "...", "answer": "..."}}]}}'
)
SEEDS_INTRO = "Pairs of the kind wanted, written from other passages (their shape, not their facts):\n"
JUDGE_INSTRUCTION = (
    "You check a question/answer pair against a passage. The answer is supported when the passage states "
    "everything the answer says and the answer answers the question. Reply with JSON only: "
    '{"supported": true} or {"supported": false}'
)


def passage(block: dict) -> str:
    """A block as the teacher reads it (and as the grounding floor measures it): its heading path, then its text."""
    return f"{block['title']}\n\n{block['text']}" if block.get("title") else block["text"]


def pairs_messages(spec: TeacherTask, text: str) -> list[dict]:
    system = PAIRS_INSTRUCTION.format(description=" ".join(spec.description.split()), n=spec.pairs_per_chunk)
    if spec.seeds:
        seeds = {"pairs": [{"question": s.question, "answer": s.answer} for s in spec.seeds]}
        system += "\n\n" + SEEDS_INTRO + json.dumps(seeds, ensure_ascii=False)
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Passage:\n{text}"}]


def judge_messages(text: str, question: str, answer: str) -> list[dict]:
    user = f"Passage:\n{text}\n\nQuestion: {question}\nAnswer: {answer}"
    return [{"role": "system", "content": JUDGE_INSTRUCTION}, {"role": "user", "content": user}]


def structured(body: dict, name: str, schema: dict) -> dict:
    """`body` asking for JSON that follows `schema` (OpenAI's and vLLM's `response_format`)."""
    return {**body, "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}


def first_json(text: str) -> object | None:
    """The first JSON object or array in `text`: the whole reply, or the first `{`/`[` from which one decodes (a
    code fence, a sentence before it, or text after it are skipped). None when there is none."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        return value
    return None


def read_pairs(text: str) -> tuple[list[tuple[str, str]], int]:
    """(pairs, unreadable): the (question, answer) pairs of a reply, and how many of its items were not one. A reply
    with no JSON, or JSON of another shape, reads as ([], 1): one unreadable reply."""
    value = first_json(text)
    if isinstance(value, dict):
        value = value.get("pairs", [value] if {"question", "answer"} <= value.keys() else None)
    if not isinstance(value, list) or not value:
        return [], 1
    pairs, bad = [], 0
    for item in value:
        q = item.get("question") if isinstance(item, dict) else None
        a = item.get("answer") if isinstance(item, dict) else None
        if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
            pairs.append((" ".join(q.split()), a.strip()))
        else:
            bad += 1
    return pairs, bad


_VERDICT_WORD = re.compile(r"\W*(yes|no|true|false|supported|unsupported)\b", re.IGNORECASE)


def read_verdict(text: str) -> bool | None:
    """The judge's verdict: `{"supported": true}`, or a reply without JSON that starts with yes/no/true/false; None
    otherwise (counted as unsupported: only a clear yes keeps a pair)."""
    value = first_json(text)
    if isinstance(value, dict) and isinstance(value.get("supported"), bool):
        return value["supported"]
    if isinstance(value, bool):
        return value
    if value is not None:  # JSON, but no verdict in it
        return None
    m = _VERDICT_WORD.match(text)
    return m.group(1).casefold() in ("yes", "true", "supported") if m else None
