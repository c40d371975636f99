"""Scoring generated answers against references, per task and overall.

ROUGE-L is computed here on whitespace tokens rather than with the `rouge-score` package, whose tokenizer drops
every non-ASCII letter (German or Czech answers would score on their ASCII fragments only).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over case-folded whitespace tokens."""
    p, r = normalise(prediction).split(), normalise(reference).split()
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def score_group(rows: list[dict]) -> dict:
    """rows: {prediction, reference, format_valid, refused, task} for one task or all. Only what the answers
    determine: the same answers give the same bytes (timings are in `timing`)."""
    import sacrebleu

    preds, refs = [r["prediction"] for r in rows], [r["reference"] for r in rows]
    refusal = [r for r in rows if r["task"] == "REFUSAL"]
    others = [r for r in rows if r["task"] != "REFUSAL"]
    out = {
        "n": len(rows),
        "exact_match": statistics.fmean(exact_match(p, r) for p, r in zip(preds, refs, strict=True)),
        "rouge_l": statistics.fmean(rouge_l(p, r) for p, r in zip(preds, refs, strict=True)),
        "bleu": sacrebleu.corpus_bleu(preds, [refs]).score / 100,
        "chrf": sacrebleu.corpus_chrf(preds, [refs]).score / 100,
        "format_valid": statistics.fmean(float(r["format_valid"]) for r in rows),
    }
    keypoint_rows = [r for r in rows if r.get("keypoint_coverage") is not None]
    if keypoint_rows:
        out["keypoint_coverage"] = statistics.fmean(r["keypoint_coverage"] for r in keypoint_rows)
    if refusal:
        out["refusal_accuracy"] = statistics.fmean(float(r["refused"]) for r in refusal)
    if others:
        out["false_refusal"] = statistics.fmean(float(r["refused"]) for r in others)
    return out


def score(rows: list[dict]) -> dict:
    """{"overall": {...}, "<TASK>": {...}} with tasks in sorted order, so diffs line up."""
    by_task = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    result = {"overall": score_group(rows)}
    result.update({t: score_group(by_task[t]) for t in sorted(by_task)})
    return result


def timing(rows: list[dict], generations: list[dict]) -> dict:
    """Latency and throughput, {"overall": {...}, "<TASK>": {...}} like `score`, from the generations (latency_ms,
    new_tokens) of the scored rows. Wall-clock figures differ on every run, so a DVC run writes them only to files DVC
    does not track (metrics/timing/), never into an output: same inputs, same bytes, and a clean `git status`."""

    def group(gens: list[dict]) -> dict:
        latencies = [g["latency_ms"] for g in gens]
        seconds = sum(latencies) / 1000
        return {
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
            "tokens_per_second": sum(g["new_tokens"] for g in gens) / seconds if seconds else 0.0,
        }

    by_task = defaultdict(list)
    for r, g in zip(rows, generations, strict=True):
        by_task[r["task"]].append(g)
    return {"overall": group(generations)} | {t: group(by_task[t]) for t in sorted(by_task)}


def delta(finetuned: dict, baseline: dict) -> dict:
    """finetuned − baseline for every numeric metric present in both (counts excluded)."""
    return {
        group: {k: v - baseline[group][k] for k, v in metrics.items() if k != "n" and k in baseline.get(group, {})}
        for group, metrics in finetuned.items()
        if group in baseline
    }


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.casefold()) if len(w) > 3}


def keypoint_coverage(prediction: str, keypoints: list[str], threshold: float = 0.6) -> float:
    """Share of key points (steps, sentences) whose content words mostly appear in the prediction."""
    said = _content_words(prediction)
    covered = 0
    for kp in keypoints:
        words = _content_words(kp)
        if words and len(words & said) / len(words) >= threshold:
            covered += 1
    return covered / len(keypoints) if keypoints else 0.0


def format_valid(ex: dict, prediction: str, tasks) -> bool:
    """The example's task's format check from the task file; a task the file lacks has no valid format."""
    from finetune.chat import reference_answer
    from finetune.generation.checks import passes

    task = tasks.tasks.get(ex["task"])
    return bool(
        task and passes(task.check.name, task.check.args, prediction, reference_answer(ex), ex.get("meta", {}))
    )


def scored_rows(examples: list[dict], generations: list[dict], refusal: str, tasks) -> list[dict]:
    """Join examples with their generations and apply each task's format check (tasks: the loaded task file)."""
    from finetune.chat import reference_answer, user_prompt

    rows = []
    for ex, gen in zip(examples, generations, strict=True):
        pred, meta = gen["prediction"], ex.get("meta", {})
        rows.append(
            {
                "id": ex["id"],
                "task": ex["task"],
                "prompt": user_prompt(ex),
                "reference": reference_answer(ex),
                "prediction": pred,
                "format_valid": format_valid(ex, pred, tasks),
                "refused": normalise(refusal) in normalise(pred),
                # Whatever task wrote key points into the example's meta (steps, sentences, wiring notes) is scored
                # on them; the task's name does not matter.
                "keypoint_coverage": keypoint_coverage(pred, meta["keypoints"]) if meta.get("keypoints") else None,
                "new_tokens": gen["new_tokens"],  # greedy decoding: the same every run, unlike its latency
            }
        )
    return rows
