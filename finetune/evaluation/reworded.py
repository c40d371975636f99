"""Val's questions reworded by the teacher (generate.teacher), scored beside val: how much of what an adapter does on
val it also does when the same question comes in other words.

Only with `generate.teacher.endpoint` set. Each val question the templates wrote (not one the teacher already
reworded in generate) is reworded once more through the teacher's own code, client and cache (generation.teacher),
with a seed generate never used (generate.seed + its paraphrases), so the wording is one no training example has.
Same answer, same reference: a drop from val's score to the reworded one is what the adapter learned of our
wordings rather than of the documents.
"""

from __future__ import annotations

from finetune.params import Generate


def reword(examples: list[dict], gparams: Generate, prefixes: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """(originals, rewordings): the val examples the teacher reworded and their rewording, pair by pair."""
    from finetune.generation import teacher

    t = gparams.teacher
    fresh = gparams.model_copy(
        update={"seed": gparams.seed + max(1, t.paraphrases), "teacher": t.model_copy(update={"paraphrases": 1})}
    )
    originals = [e for e in examples if "paraphrase_of" not in e.get("meta", {})]
    out, _ = teacher.run(originals, fresh, prefixes)
    by_id = {e["id"]: e for e in originals}
    pairs = [(by_id[e["meta"]["paraphrase_of"]], e) for e in out if e["id"] not in by_id]
    return [o for o, _ in pairs], [r for _, r in pairs]


def section(original_rows: list[dict], base_rows: list[dict], tuned_rows: list[dict]) -> dict:
    """The `reworded` section of metrics/eval/<domain>.json: both models on the rewordings, the fine-tuned one on
    their originals, and the gap between the two."""
    from finetune.evaluation.metrics import score_group

    tuned, original = score_group(tuned_rows), score_group(original_rows)
    return {
        "n": len(tuned_rows),
        "baseline": score_group(base_rows),
        "finetuned": tuned,
        "finetuned_on_originals": original,
        "gap": {"rouge_l": original["rouge_l"] - tuned["rouge_l"]},
    }
