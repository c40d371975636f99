"""Answers to the val prompts, scored: from a local model (base, or base + adapter) or from a served one."""

from __future__ import annotations

from finetune.params import Eval


def predict(model, tokenizer, examples: list[dict], eval_params: Eval, refusal: str, desc: str, tasks) -> list[dict]:
    """Greedy answers of a local model, scored; `tasks` (the task file) holds each task's format check."""
    from finetune.chat import prompt_messages
    from finetune.evaluation.inference import generate
    from finetune.evaluation.metrics import scored_rows

    gens = generate(
        model,
        tokenizer,
        [prompt_messages(e) for e in examples],
        eval_params.batch_size,
        eval_params.max_new_tokens,
        desc,
    )
    return scored_rows(examples, gens, refusal, tasks)


def endpoint_predict(
    url: str, name: str, examples: list[dict], eval_params: Eval, refusal: str, cache, tasks
) -> list[dict]:
    """The served model's greedy answers, scored like local ones; latency is per request as the client saw it."""
    from finetune.chat import prompt_messages
    from finetune.evaluation.metrics import scored_rows
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
    return scored_rows(examples, gens, refusal, tasks)
