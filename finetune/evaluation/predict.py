"""Answers to the val prompts, scored: from a local model (base, or base + adapter) or from a served one."""

from __future__ import annotations

from finetune.params import Eval


def predict(
    model, tokenizer, examples: list[dict], eval_params: Eval, refusal: str, desc: str, tasks
) -> tuple[list[dict], dict]:
    """(rows, timing): greedy answers of a local model, scored (`tasks`, the task file, holds each task's format
    check), and their latency (metrics.timing), which is kept apart: it differs on every run."""
    from finetune.chat import prompt_messages
    from finetune.evaluation.inference import generate
    from finetune.evaluation.metrics import scored_rows, timing

    gens = generate(
        model,
        tokenizer,
        [prompt_messages(e) for e in examples],
        eval_params.batch_size,
        eval_params.max_new_tokens,
        desc,
    )
    rows = scored_rows(examples, gens, refusal, tasks)
    return rows, timing(rows, gens)


def endpoint_predict(
    url: str, name: str, examples: list[dict], eval_params: Eval, refusal: str, cache, tasks
) -> tuple[list[dict], dict]:
    """(rows, timing) of the served model's greedy answers, scored like local ones; latency is per request as the
    client saw it."""
    from finetune.chat import prompt_messages
    from finetune.evaluation.metrics import scored_rows, timing
    from finetune.serving.endpoint import Client, chat_body

    client = Client.from_params(url, eval_params, cache, stage="evaluate", section="eval")
    bodies = [
        chat_body(name, prompt_messages(e), temperature=0, max_tokens=eval_params.max_new_tokens) for e in examples
    ]
    answers = client.complete(bodies, "fine-tuned (endpoint)")
    gens = [
        # strip(): the local path strips decoded text too, so both score the same answer the same way.
        {"prediction": a.content.strip(), "latency_ms": a.latency_ms, "new_tokens": a.completion_tokens or 0}
        for a in answers
    ]
    rows = scored_rows(examples, gens, refusal, tasks)
    return rows, timing(rows, gens)
