"""Does one domain's adapter break the others' answers? It answers a sample of every other domain's val examples and
refusal questions, beside the untuned base on the same prompts.

Every prompt is asked with the adapter's own system prompt, as a server routing requests to this adapter would.
Three figures per other domain: ROUGE-L of the adapter's answers against the base's (a negative delta: it answers
that domain worse than the base did), the share of its in-domain questions the adapter refuses (keeping to its own
domain, which a domain adapter should), and the share of its off-topic (refusal) questions the adapter refuses.
"""

from __future__ import annotations

import random
import statistics

from finetune.chat import prompt_messages, reference_answer
from finetune.evaluation.metrics import normalise, rouge_l
from finetune.params import Compare

REFUSAL_TASK = "REFUSAL"


def sample(examples: list[dict], n: int, seed: int) -> list[dict]:
    """n examples drawn with the seed from a list sorted by id, so the draw depends on the val set alone."""
    ordered = sorted(examples, key=lambda e: e["id"])
    return random.Random(seed).sample(ordered, min(n, len(ordered)))


def draw(val_sets: dict[str, list[dict]], domain: str, params: Compare) -> dict[str, dict[str, list[dict]]]:
    """{other domain: {"answers": [...], "refusals": [...]}} for every domain but `domain`, in name order."""
    drawn = {}
    for other in sorted(val_sets):
        if other == domain:
            continue
        examples = val_sets[other]
        answers = [e for e in examples if e["task"] != REFUSAL_TASK]
        refusals = [e for e in examples if e["task"] == REFUSAL_TASK]
        drawn[other] = {
            "answers": sample(answers, params.examples_per_domain, params.seed),
            "refusals": sample(refusals, params.refusals_per_domain, params.seed),
        }
    return drawn


def as_asked_by(example: dict, system_prompt: str) -> list[dict]:
    """The example's prompt with the adapter's own system prompt in place of its domain's."""
    messages = [m for m in prompt_messages(example) if m["role"] != "system"]
    return [{"role": "system", "content": system_prompt}, *messages]


def _share(flags: list[bool]) -> float | None:
    return statistics.fmean(map(float, flags)) if flags else None


def summarise(drawn: dict, base: list[str], tuned: list[str], refusal: str) -> dict:
    """Per other domain, from the answers to `drawn`'s prompts in order (answers, then refusals, domain by domain)."""
    out, i = {}, 0
    refuses = normalise(refusal)
    for other, sets in drawn.items():
        answers, refusals = sets["answers"], sets["refusals"]
        a_base, a_tuned = base[i : i + len(answers)], tuned[i : i + len(answers)]
        i += len(answers)
        r_tuned = tuned[i : i + len(refusals)]
        i += len(refusals)
        refs = [reference_answer(e) for e in answers]
        rouge_base = statistics.fmean(rouge_l(p, r) for p, r in zip(a_base, refs, strict=True)) if refs else None
        rouge_tuned = statistics.fmean(rouge_l(p, r) for p, r in zip(a_tuned, refs, strict=True)) if refs else None
        out[other] = {
            "examples": len(answers),
            "rouge_l_base": rouge_base,
            "rouge_l": rouge_tuned,
            "rouge_l_delta": None if rouge_base is None else rouge_tuned - rouge_base,
            "refuses_in_domain": _share([refuses in normalise(p) for p in a_tuned]),
            "refusal_questions": len(refusals),
            "refuses_off_topic": _share([refuses in normalise(p) for p in r_tuned]),
        }
    return out


def prompts(drawn: dict, system_prompt: str) -> list[list[dict]]:
    return [as_asked_by(e, system_prompt) for sets in drawn.values() for e in [*sets["answers"], *sets["refusals"]]]
