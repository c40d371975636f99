"""An LLM judge (eval.judge): each answer graded against its reference as correct, partly correct or wrong.

Lexical scores cannot tell "Open the gas cock first" from "First, open the gas valve"; a judge can. Any
OpenAI-compatible server: the request asks for JSON through `response_format` ({"verdict", "reason"}), and a server
that refuses the field is asked in plain text, as the teacher is (generation.teacher_pairs.Asker); a reply is read as
JSON wherever it sits, else by its first word. A reply read as neither is *unparseable*, a request the server failed
after every retry an *error*: both are counted, neither stops the stage, and neither counts as correct.

Semantic match rate = (correct + partly / 2) / graded, where graded leaves out unparseable and errors: partly
correct counts half. Every reply goes through the endpoint client's cache (eval.judge.cache, one file per request:
question, reference, answer, source passage, model), so a rerun asks nothing and an edited question asks again
about itself only.
"""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from finetune.io import InputError, Progress, log
from finetune.params import Judge

VERDICTS = ("correct", "partly", "wrong")
SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
# Short: a judge with a small context (the tiny test model takes 384 tokens) must still get the question in.
INSTRUCTION = (
    "Grade the answer against the reference answer (and the passage, if given). correct: says what the reference "
    "says, in any words; partly: some of it, or a wrong detail; wrong: missing, contradicting or off the point. A "
    'refusal is correct only where the reference refuses. Reply with JSON only: {"verdict": '
    '"correct|partly|wrong", "reason": "<one line>"}'
)
_WORD = re.compile(r"\W*(correct|partly|partially|wrong|incorrect)\b\W*(.*)", re.IGNORECASE | re.DOTALL)
_SYNONYM = {"partially": "partly", "incorrect": "wrong"}


def read_verdict(text: str) -> tuple[str, str] | None:
    """(verdict, reason) from a reply: JSON {"verdict", "reason"} anywhere in it, or plain text starting with the
    verdict word ("Partly: the unit is missing"); None when neither."""
    from finetune.generation.pair_requests import first_json

    value = first_json(text)
    if isinstance(value, dict) and isinstance(value.get("verdict"), str):
        verdict = _SYNONYM.get(value["verdict"].strip().casefold(), value["verdict"].strip().casefold())
        if verdict in VERDICTS:
            return verdict, " ".join(str(value.get("reason", "")).split())
        return None
    if value is not None:
        return None
    m = _WORD.match(text)
    if not m:
        return None
    word = m.group(1).casefold()
    return _SYNONYM.get(word, word), " ".join(m.group(2).split())


def messages(question: str, reference: str, answer: str, passage: str = "") -> list[dict]:
    source = f"Documentation passage:\n{passage}\n\n" if passage else ""
    user = f"{source}Question: {question}\nReference answer: {reference}\nAssistant's answer: {answer}"
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": user}]


def passages(blocks: list[dict], limit: int) -> dict[str, str]:
    """Each source document's text as the judge sees it: its blocks in order, cut at `limit` characters; keyed by
    the document's path below raw/ and by each block's full source (path#anchor)."""
    out: dict[str, list[str]] = {}
    for b in blocks:
        full = b.get("source", "")
        path = full.split("#", 1)[0]
        short = path.split("/raw/", 1)[-1]
        for key in dict.fromkeys((full, path, short)):
            out.setdefault(key, []).append(b["text"])
    return {k: "\n\n".join(v)[:limit] for k, v in out.items()}


def grade(rows: list[dict], judge: Judge, stage: str, desc: str, sources: dict[str, str] | None = None) -> dict:
    """Grade each row ({prompt, reference, prediction, source}) in place (row["judge"] = {verdict, reason} or None)
    and return the counts: asked (sent to the server, not from the cache), parsed, unparseable, errors, each
    verdict, and the semantic match rate."""
    from finetune.generation.teacher_pairs import Asker, Outcome
    from finetune.serving.endpoint import Client, EndpointError, Refusal, chat_body

    if not judge.model:
        raise InputError("params.yaml", "eval.judge.endpoint is set but eval.judge.model is not")
    client = Client.from_params(judge.endpoint, judge, judge.cache, stage=stage, section="eval.judge")
    asker = Asker(client)
    sources = sources or {}

    def one(row: dict) -> tuple[str, Outcome]:
        outcome = Outcome()
        passage = sources.get(row.get("source") or "", "")
        body = chat_body(
            judge.model,
            messages(row["prompt"], row["reference"], row["prediction"], passage),
            temperature=0,
            max_tokens=judge.max_tokens,
        )
        try:
            reply = asker.ask(body, "verdict", SCHEMA, outcome)
        except EndpointError as e:
            # Not cached, so a rerun asks it again; the other answers are graded all the same.
            row["judge"] = None
            return f"error: {e}", outcome
        if isinstance(reply, Refusal):
            row["judge"] = None
            return f"error: HTTP {reply.status}: {reply.reason}", outcome
        got = read_verdict(reply.content)
        row["judge"] = {"verdict": got[0], "reason": got[1]} if got else None
        return ("parsed" if got else "unparseable"), outcome

    counts: Counter = Counter()
    errors: list[str] = []
    pool = ThreadPoolExecutor(judge.concurrency, thread_name_prefix="judge")
    with pool, Progress(stage, desc, len(rows), "verdict") as bar:
        for what, outcome in pool.map(one, rows):
            counts["asked"] += outcome.requests - outcome.cached
            if what.startswith("error"):
                counts["errors"] += 1
                errors.append(what)
            else:
                counts[what] += 1
            bar.update()
    for row in rows:
        if row["judge"]:
            counts[row["judge"]["verdict"]] += 1
    if errors:
        log(stage, f"judge: {len(errors)} of {len(rows)} {desc} not graded (server errors), e.g. {errors[0]}")
    if counts["unparseable"]:
        log(stage, f"judge: {counts['unparseable']} of {len(rows)} {desc} verdicts unreadable")
    graded = sum(counts[v] for v in VERDICTS)
    result = {k: counts[k] for k in ("asked", "parsed", "unparseable", "errors", *VERDICTS)}
    result["semantic_match"] = (counts["correct"] + counts["partly"] / 2) / graded if graded else None
    return result
