"""Question/answer pairs a teacher LLM writes from each block, kept only when grounded in it (generate.teacher).

For every task whose task-file entry has a `teacher:` block, every block the task reads is one chunk. Per chunk:
one request for `pairs_per_chunk` pairs (pair_requests), then, for each pair that passes the word checks, one judge
request with the chunk in front of it. A pair is dropped, and counted under its reason, when:

    unparseable         the reply (or an item of it) is not a question/answer pair
    too_long            its answer is over max_answer_chars
    not_grounded        under min_grounded of its answer's content words occur in the chunk (grounding)
    judged_unsupported  the judge did not say the chunk supports it (a verdict it could not read included)
    duplicate           its question is max_similarity-close to a question already kept (rule-based ones included)
    rejected            the server refused its request as invalid (HTTP 400/413/422, e.g. a prompt over its
                        context): one for a refused pairs request (its chunk gives nothing), one per refused judge

A task's refusals are logged in one line and kept in the metrics with their reasons; when the server refused a task's
pairs requests as too large, generate warns once, with what to change.

Every request goes through the endpoint client's cache (one file per request body: chunk text, task description and
seeds, model and sampling; refusals too), so a rerun asks nothing and a changed document asks only about its own
chunks; a killed run resumes where it stopped. Chunks go `concurrency` at a time, each worker one request at a time.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from finetune.chat import user_prompt
from finetune.generation.builders import sentences
from finetune.generation.examples import blocks_read, example
from finetune.generation.grounding import KeptQuestions, grounded_share
from finetune.generation.pair_requests import (
    PAIRS_SCHEMA,
    VERDICT_SCHEMA,
    judge_messages,
    pairs_messages,
    passage,
    read_pairs,
    read_verdict,
    structured,
)
from finetune.generation.taskfile import Task, TaskFile, enabled
from finetune.generation.teacher import log_refusals, rejected_reasons, sized, split_prefix, too_large
from finetune.io import InputError, Progress, log
from finetune.params import Generate
from finetune.serving.endpoint import Answer, Client, Refusal, chat_body

REASONS = ("unparseable", "too_long", "not_grounded", "judged_unsupported", "duplicate", "rejected")


@dataclass
class Chunk:
    task: str
    spec: Task
    block: dict
    text: str


@dataclass
class Outcome:
    """One chunk's result: the pairs that passed every check but the duplicate one, and the counts."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # parsed, judged, each reason
    requests: int = 0
    cached: int = 0
    refused_pairs: list[Refusal] = field(default_factory=list)
    refused_judges: list[Refusal] = field(default_factory=list)


class Asker:
    """Requests through the client, structured output first; on a server that refuses it, plain prompting. A
    request refused in plain text too is refused for itself (too long, say): a Refusal, not a reason to stop."""

    def __init__(self, client: Client):
        self.client, self.structured = client, True
        self._lock = threading.Lock()

    def ask(self, body: dict, name: str, schema: dict, outcome: Outcome) -> Answer | Refusal:
        shaped = structured(body, name, schema)
        # Either form may be in the cache from an earlier run: an answer to either is used; a cached refusal of the
        # structured form means the plain form is the one to use, as on that run.
        first = self.client.cached(shaped, refusals=True)
        got = first if isinstance(first, Answer) else self.client.cached(body, refusals=True)
        if got is None:
            if first is None and self.structured:
                first = self.client.ask(shaped, refusals=True)
            got = first if isinstance(first, Answer) else self.client.ask(body, refusals=True)
            if isinstance(first, Refusal) and isinstance(got, Answer):
                # Plain text accepted where the structured form was refused: it is the field the server refuses.
                with self._lock:
                    if self.structured:
                        log("generate", f"the teacher rejected response_format ({first.reason}); asking in plain text")
                    self.structured = False
        outcome.requests += 1
        outcome.cached += got.cached
        return got


def chunks(blocks: list[dict], gparams: Generate, taskfile: TaskFile, params_source: str) -> list[Chunk]:
    """Every (opted-in task, block it reads) in generate.tasks order, then file order."""
    tasks = enabled(taskfile, gparams.tasks, params_source)
    opted = {name: task for name, task in tasks.items() if task.teacher is not None}
    read = blocks_read(blocks, tasks)
    return [Chunk(name, task, b, passage(b)) for name, task in opted.items() for b in read[name]]


def ask_chunk(chunk: Chunk, asker: Asker, gparams: Generate) -> Outcome:
    t, out = gparams.teacher, Outcome()
    body = chat_body(
        t.model,
        pairs_messages(chunk.spec.teacher, chunk.text),
        temperature=t.temperature,
        max_tokens=t.pairs_max_tokens,
        seed=gparams.seed,
    )
    reply = asker.ask(body, "pairs", PAIRS_SCHEMA, out)
    if isinstance(reply, Refusal):
        out.counts["rejected"] += 1
        out.refused_pairs.append(reply)
        return out
    pairs, unreadable = read_pairs(reply.content)
    out.counts["unparseable"] += unreadable
    out.counts["parsed"] += len(pairs)
    for question, answer in pairs:
        if len(answer) > t.max_answer_chars:
            out.counts["too_long"] += 1
        elif grounded_share(answer, chunk.text) < t.min_grounded:
            out.counts["not_grounded"] += 1
        else:
            # temperature 0: the verdict is the model's most likely one, the same on every server that honours it.
            judge = chat_body(
                t.model, judge_messages(chunk.text, question, answer), temperature=0, max_tokens=t.judge_max_tokens
            )
            out.counts["judged"] += 1
            verdict = asker.ask(judge, "verdict", VERDICT_SCHEMA, out)
            if isinstance(verdict, Refusal):
                out.counts["rejected"] += 1
                out.refused_judges.append(verdict)
            elif read_verdict(verdict.content) is True:
                out.pairs.append((question, answer))
            else:
                out.counts["judged_unsupported"] += 1
    return out


def ask_all(todo: list[Chunk], asker: Asker, gparams: Generate) -> list[Outcome]:
    """Every chunk's outcome, in order, `concurrency` chunks at a time under a progress bar."""
    outcomes: list[Outcome | None] = [None] * len(todo)
    kept = dropped = 0
    pool = ThreadPoolExecutor(gparams.teacher.concurrency, thread_name_prefix="teacher")
    try:
        futures = {pool.submit(ask_chunk, c, asker, gparams): i for i, c in enumerate(todo)}
        with Progress("generate", "teacher pairs", len(todo), "chunk") as bar:
            for future in as_completed(futures):
                out = future.result()
                outcomes[futures[future]] = out
                kept += len(out.pairs)
                dropped += sum(out.counts[r] for r in REASONS)
                bar.update(kept=kept, dropped=dropped)
    finally:
        # On a failure, drop the chunks not started; those in flight finish, and their answers land in the cache.
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def summary(counts: Counter, refusals: list[Refusal]) -> dict:
    return {
        "asked": counts["asked"],
        "parsed": counts["parsed"],
        "judged": counts["judged"],
        "kept": counts["kept"],
        "dropped": {r: counts[r] for r in REASONS},
        "rejected_reasons": rejected_reasons(refusals),
    }


def warn_too_large(task: str, chunks: list[Chunk], refused: list[Refusal], gparams: Generate, taskfile: str) -> None:
    """Once per task whose pairs requests the server refused as too large: how large, and what to change. With the
    token counts the refusal gives, the instructions and seeds (the system message) are sized apart from the block,
    to say whether a smaller extract.max_chars can fit or only shorter instructions, fewer reply tokens or a longer
    context will."""
    n, largest, limit = too_large(refused)
    if not n:
        return
    biggest = max(len(c.text) for c in chunks)
    fix = (
        f"shorten tasks.{task}.teacher (description, seeds) in {taskfile}, lower extract.max_chars (its largest "
        f"block here is {biggest} chars) or generate.teacher.pairs_max_tokens ({gparams.teacher.pairs_max_tokens}), "
        "or serve the teacher with a longer context"
    )
    if largest is not None and limit is not None:
        chunk = max(chunks, key=lambda c: len(c.text))
        system = pairs_messages(chunk.spec.teacher, "")[0]["content"]
        # chars -> tokens at the rate of the largest refused prompt, which was about the largest block's
        per_char = largest / (len(system) + len("Passage:\n") + len(chunk.text))
        instructions = round(len(system) * per_char)
        room = limit - instructions - gparams.teacher.pairs_max_tokens
        if instructions >= limit:
            fix = (
                f"its instructions and seeds alone are ~{instructions} tokens: shorten tasks.{task}.teacher "
                f"(description, seeds) in {taskfile}, or serve the teacher with a longer context"
            )
        elif room > 0:
            fix = (
                f"lower extract.max_chars to about {int(room / per_char)} (its largest block here is {biggest} "
                f"chars), shorten tasks.{task}.teacher in {taskfile}, or serve the teacher with a longer context"
            )
    log(
        "generate",
        f"warning: task {task}: the teacher refused {n} of its pairs requests as too large ({sized(largest, limit)})"
        f": {fix}",
    )


def run(
    blocks: list[dict], examples: list[dict], gparams: Generate, taskfile: TaskFile, params_source: str
) -> tuple[list[dict], dict]:
    """The teacher's kept pairs as examples, and the counts for metrics/generate.json (overall and per task)."""
    t = gparams.teacher
    todo = chunks(blocks, gparams, taskfile, params_source)
    if not todo:
        log(
            "generate",
            f"teacher: no block to ask about (no task in generate.tasks has a `teacher:` in {taskfile.path})",
        )
        return [], {**summary(Counter(), []), "per_task": {}}
    client = Client.from_params(t.endpoint, t, t.cache, stage="generate", section="generate.teacher")
    log("generate", f"teacher: {len(todo)} chunks to {client.url} ({t.concurrency} at a time, cache {t.cache})")
    outcomes = ask_all(todo, Asker(client), gparams)

    # Duplicates last and in chunk order, so the same cache gives the same examples whatever order replies came in.
    prefixes = {name: task.prefix for name, task in taskfile.tasks.items()}
    kept_questions = KeptQuestions(
        t.max_similarity, [split_prefix(user_prompt(e), prefixes.get(e["task"], ""))[1] for e in examples]
    )
    ids = {e["id"] for e in examples}
    new, per_task, total = [], {}, Counter()
    refused: dict[str, tuple[list[Refusal], list[Refusal]]] = {}
    for chunk, out in zip(todo, outcomes, strict=True):
        counts = per_task.setdefault(chunk.task, Counter())
        counts.update(out.counts)
        pairs_refused, judges_refused = refused.setdefault(chunk.task, ([], []))
        pairs_refused += out.refused_pairs
        judges_refused += out.refused_judges
        counts["asked"] += 1
        for question, answer in out.pairs:
            e = _example(chunk, question, answer, gparams)
            if e["id"] in ids or kept_questions.duplicate(question):
                counts["duplicate"] += 1
                continue
            kept_questions.add(question)
            ids.add(e["id"])
            new.append(e)
            counts["kept"] += 1
    for counts in per_task.values():
        total.update(counts)
    requests, cached = sum(o.requests for o in outcomes), sum(o.cached for o in outcomes)
    log(
        "generate",
        f"teacher: {requests} requests for {len(todo)} chunks ({requests / len(todo):.2f} a chunk), "
        f"{cached} from the cache ({cached / max(requests, 1):.0%}); kept {total['kept']} of {total['parsed']} pairs",
    )
    for name, (pairs_refused, judges_refused) in refused.items():
        if pairs_refused or judges_refused:
            what = "pairs and judge" if pairs_refused and judges_refused else "pairs" if pairs_refused else "judge"
            log_refusals(name, what, pairs_refused + judges_refused)
            warn_too_large(name, [c for c in todo if c.task == name], pairs_refused, gparams, taskfile.path)
    every = {name: p + j for name, (p, j) in refused.items()}
    metrics = {
        **summary(total, [r for rs in every.values() for r in rs]),
        "per_task": {name: summary(c, every[name]) for name, c in per_task.items()},
    }
    if not new:
        reasons = ", ".join(f"{r} {total[r]}" for r in REASONS if total[r])
        what = f"teacher: no pair kept of {total['parsed']} parsed from {total['asked']} replies ({reasons})"
        if t.on_empty == "fail":
            raise InputError(
                params_source, f"{what}; see docs/your-own-data.md, or set generate.teacher.on_empty: rules"
            )
        log("generate", f"{what}; going on with the rule-based examples (generate.teacher.on_empty: rules)")
    return new, metrics


def _example(chunk: Chunk, question: str, answer: str, gparams: Generate) -> dict:
    messages = [
        {"role": "system", "content": gparams.system_prompt},
        {"role": "user", "content": f"{chunk.spec.prefix} {question}"},
        {"role": "assistant", "content": answer},
    ]
    meta = {"teacher": "pairs"}
    if chunk.spec.keypoints != "none":  # evaluate's key-point coverage: the answer's sentences
        meta["keypoints"] = sentences(answer)
    return example(chunk.task, chunk.block["source"], chunk.block["id"], messages, meta)
