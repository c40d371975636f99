"""Batched greedy generation over chat examples, timed per batch."""

from __future__ import annotations

import time


def generate(
    model, tokenizer, prompts: list[list[dict]], batch_size: int, max_new_tokens: int, desc: str, progress: bool = True
) -> list[dict]:
    """Answer each prompt (a list of chat messages); returns {prediction, latency_ms, new_tokens} per prompt.

    Left padding so every sequence in a batch ends at its generation prompt; greedy so results are reproducible.
    Latency is the batch's wall time divided by its size: what a served batch of this size would give per request.
    progress=False drops the progress bar, for one question at a time (`finetune chat`).
    """
    import click
    import torch

    from finetune.io import progress as progress_of

    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    out: list[dict] = []
    model.eval()
    starts = range(0, len(texts), batch_size)
    ctx = click.get_current_context(silent=True)  # the command answering: baseline, evaluate, interference
    stage = ctx.info_name if ctx is not None else "answers"
    for start in progress_of(starts, stage, f"{desc} answers", "batch", "batches") if progress else starts:
        batch = texts[start : start + batch_size]
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        elapsed_ms = (time.perf_counter() - t0) * 1000
        new = gen[:, enc["input_ids"].shape[1] :]
        for row in new:
            n_new = int((row != tokenizer.pad_token_id).sum())
            out.append(
                {
                    "prediction": tokenizer.decode(row, skip_special_tokens=True).strip(),
                    "latency_ms": elapsed_ms / len(batch),
                    "new_tokens": n_new,
                }
            )
    return out
