"""Optional teacher LLM for `generate`: rewordings of every question, asked of any OpenAI-compatible API.

On when `generate.teacher.endpoint` is set (off by default, so the default pipeline needs no server). Each example
gets up to `paraphrases` more whose user question is the teacher's rewording: same answer, same source and block (so
the split keeps them with the original), a new id and `meta.paraphrase_of`. A paraphrase that is empty, identical to
the question (or to an earlier paraphrase of it) or over 3x its length is dropped and counted in
metrics/generate.json; so is a request the server refuses as invalid (rejected, with its reason per task). Answers
and refusals are cached under `generate.teacher.cache`, one file per request, so a rerun or a run
after a crash resumes without asking again; the API key comes from the environment variable `api_key_env` only.
"""

from __future__ import annotations

import copy
import re
from collections import Counter

from finetune.io import InputError, content_id, log
from finetune.params import Generate
from finetune.serving.endpoint import Refusal

INSTRUCTION = (
    "Rewrite the user's question in other words. Keep its meaning and every name, number, unit and model code. "
    "Reply with the rewritten question only."
)
MAX_GROWTH = 3  # a "paraphrase" over 3x the question's length is an answer or a ramble, not a rewording
_QUOTES = ('"', "'", "“", "”", "«", "»")
REASON_CHARS = 120  # a refusal's reason as metrics keep it: enough for "The prompt has N tokens, but …"


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


def rejected_reasons(refusals: list[Refusal]) -> dict[str, int]:
    """How many requests each reason refused, reasons shortened; the numbers in a reason (token counts, which differ
    per request) read as N, so one cause is one entry."""
    reasons = Counter(f"HTTP {r.status}: {re.sub(r'[0-9]+', 'N', r.reason)}"[:REASON_CHARS] for r in refusals)
    return dict(reasons.most_common())


def too_large(refusals: list[Refusal]) -> tuple[int, int | None, int | None]:
    """(how many were refused as too large, the largest prompt and the server's limit in tokens where it said)."""
    sizes = [size for r in refusals if (size := r.size()) is not None]
    prompts = [p for p, _ in sizes if p is not None]
    limits = [limit for _, limit in sizes if limit is not None]
    return len(sizes), max(prompts, default=None), min(limits, default=None)


def log_refusals(task: str, what: str, refusals: list[Refusal]) -> None:
    """One line per task: how many `what` requests the server refused, and why."""
    reasons = "; ".join(f"{reason} ({n})" for reason, n in rejected_reasons(refusals).items())
    log("generate", f"teacher: task {task}: {len(refusals)} {what} requests refused by the server, dropped: {reasons}")


def sized(largest: int | None, limit: int | None) -> str:
    if largest is not None and limit is not None:
        return f"up to {largest} tokens, the server takes at most {limit}"
    return f"the server takes at most {limit} tokens" if limit is not None else "the server refused them as too large"


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
    answers = client.complete(bodies, "teacher paraphrases", refusals=True)

    out, ids = [], {e["id"] for e in examples}
    per_task: dict[str, Counter] = {}
    refused: dict[str, list[Refusal]] = {}
    for n, (example, (prefix, question)) in enumerate(zip(examples, split, strict=True)):
        out.append(example)
        seen = {_norm(question)}
        counts = per_task.setdefault(example["task"], Counter())
        for answer in answers[n * k : (n + 1) * k]:
            counts["requested"] += 1
            if isinstance(answer, Refusal):
                counts["rejected"] += 1
                refused.setdefault(example["task"], []).append(answer)
                continue
            text = clean(answer.content, prefix)
            if not text:
                counts["empty"] += 1
            elif _norm(text) in seen:
                counts["identical"] += 1
            elif len(text) > MAX_GROWTH * len(question):
                counts["too_long"] += 1
            else:
                new = paraphrased(example, f"{prefix} {text}" if prefix else text)
                if new["id"] in ids:  # the same question and answer already exist as another example
                    counts["identical"] += 1
                    continue
                seen.add(_norm(text))
                ids.add(new["id"])
                out.append(new)
                counts["added"] += 1
    for task, refusals in refused.items():
        log_refusals(task, "rewording", refusals)
        n, largest, limit = too_large(refusals)
        if n:
            log(
                "generate",
                f"warning: task {task}: {n} rewording requests too large for the teacher ({sized(largest, limit)}): "
                "its questions (tasks.yaml) and generate.teacher.max_tokens must fit the server's context",
            )
    total = sum(per_task.values(), Counter())
    per_task_stats = {task: _stats(c, [refused.get(task, [])]) for task, c in per_task.items()}
    return out, {**_stats(total, refused.values()), "per_task": per_task_stats}


def _stats(counts: Counter, refusals) -> dict:
    return {
        "requested": counts["requested"],
        "added": counts["added"],
        "dropped": {r: counts[r] for r in ("empty", "identical", "too_long", "rejected")},
        "rejected_reasons": rejected_reasons([r for group in refusals for r in group]),
    }
