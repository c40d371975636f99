"""Optional teacher LLM for `generate`: rewordings of every question, asked of any OpenAI-compatible API.

On when `generate.teacher.endpoint` is set (off by default, so the default pipeline needs no server). Each example
gets up to `paraphrases` more whose user question is the teacher's rewording: same answer, same source and block (so
the split keeps them with the original), a new id and `meta.paraphrase_of`. A paraphrase that is empty, identical to
the question (or to an earlier paraphrase of it) or over 3x its length is dropped and counted in
metrics/generate.json. Answers are cached under `generate.teacher.cache`, one file per request, so a rerun or a run
after a crash resumes without asking again; the API key comes from the environment variable `api_key_env` only.
"""

from __future__ import annotations

import copy
from collections import Counter

from finetune.io import InputError, content_id
from finetune.params import Generate

INSTRUCTION = (
    "Rewrite the user's question in other words. Keep its meaning and every name, number, unit and model code. "
    "Reply with the rewritten question only."
)
MAX_GROWTH = 3  # a "paraphrase" over 3x the question's length is an answer or a ramble, not a rewording
_QUOTES = ('"', "'", "“", "”", "«", "»")


def split_prefix(prompt: str, prefix: str) -> tuple[str, str]:
    """("[SPEC]", "What is …?") from "[SPEC] What is …?": the teacher rewords the question, never the task tag."""
    if prefix and prompt.startswith(prefix):
        return prefix, prompt[len(prefix) :].strip()
    return "", prompt.strip()


def clean(text: str, prefix: str) -> str:
    """The reply as a question: surrounding whitespace and quotes gone, an echoed task prefix removed (inside the
    quotes or outside them, hence twice)."""
    text = text.strip()
    for _ in range(2):
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :].strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
    return text


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def paraphrased(example: dict, prompt: str) -> dict:
    """A copy of `example` asking `prompt` instead; its id is the content hash generate gives any example."""
    new = copy.deepcopy(example)
    user = next(m for m in reversed(new["messages"]) if m["role"] == "user")
    user["content"] = prompt
    answer = new["messages"][-1]["content"]
    new["id"] = content_id(new["task"], new["source"], prompt, answer)
    # Keep the task's own meta (units, key points, refusal text): evaluate's format checks read it.
    new["meta"] = {**new.get("meta", {}), "paraphrase_of": example["id"]}
    return new


def run(examples: list[dict], gparams: Generate, prefixes: dict[str, str]) -> tuple[list[dict], dict]:
    """The examples, each followed by its kept paraphrases, and counts for the metrics file. `prefixes`: each task's
    prefix from the task file, kept off the question the teacher sees."""
    from finetune.chat import user_prompt
    from finetune.serving.endpoint import Client, chat_body

    t = gparams.teacher
    if not t.model:
        raise InputError("params.yaml", "generate.teacher.endpoint is set but generate.teacher.model is not")
    client = Client.from_params(t.endpoint, t, t.cache, stage="generate", section="generate.teacher")
    k = int(t.paraphrases)
    split = [split_prefix(user_prompt(e), prefixes.get(e["task"], "")) for e in examples]
    bodies = [
        chat_body(
            t.model,
            [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": question}],
            temperature=t.temperature,
            max_tokens=t.max_tokens,
            # One seed per paraphrase: k requests for one question differ (k cache entries, k different
            # rewordings where the server samples), and each is reproducible where the server honours seeds.
            seed=gparams.seed + i,
        )
        for _, question in split
        for i in range(k)
    ]
    answers = client.complete(bodies, "teacher paraphrases")

    out, dropped, ids = [], Counter(), {e["id"] for e in examples}
    for n, (example, (prefix, question)) in enumerate(zip(examples, split, strict=True)):
        out.append(example)
        seen = {_norm(question)}
        for answer in answers[n * k : (n + 1) * k]:
            text = clean(answer.content, prefix)
            if not text:
                dropped["empty"] += 1
            elif _norm(text) in seen:
                dropped["identical"] += 1
            elif len(text) > MAX_GROWTH * len(question):
                dropped["too_long"] += 1
            else:
                new = paraphrased(example, f"{prefix} {text}" if prefix else text)
                if new["id"] in ids:  # the same question and answer already exist as another example
                    dropped["identical"] += 1
                    continue
                seen.add(_norm(text))
                ids.add(new["id"])
                out.append(new)
    stats = {
        "requested": len(bodies),
        "added": len(out) - len(examples),
        "dropped": {r: dropped[r] for r in ("empty", "identical", "too_long")},
    }
    return out, stats
