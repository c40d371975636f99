"""Every domain's adapter side by side: its evaluate results per task (baseline vs fine-tuned) and the interference
check, as one table (`heating.rouge_l`, `heating.SPEC.rouge_l`, `heating.on.cli_tool.rouge_l_delta`) and one Markdown
page, and the few headline numbers of that table that DVC shows as metrics (`headline`)."""

from __future__ import annotations

import statistics

from finetune.evaluation.interference import REFUSAL_TASK
from finetune.evaluation.question_report import compare_keys

HEADLINE = ("rouge_l", "exact_match", "format_valid", "refusal_accuracy")


# The headline: the only numbers DVC treats as metrics (metrics/headline.json), so that `dvc exp show` and `dvc
# metrics show` print a few readable columns instead of one per task, stage count and domain pair (over a thousand).
# Keys of a domain's row in `table` (a nested key joined with "."; HEADLINE above is what the row copies from the
# overall scores), in column order; one absent from every domain (the questions' and judge's, until a domain has
# questions or a judge) gives no column.
HEADLINE_KEYS = (
    "questions.rouge_l",
    "questions.rouge_l_base",
    "questions.judge_rate",
    "rouge_l",
    "rouge_l_base",
    "rouge_l_tasks",
    "rouge_l_tasks_base",
    "refusal_accuracy",
)


def _pair(baseline: dict, finetuned: dict, key: str) -> dict:
    return {key: finetuned.get(key), f"{key}_base": baseline.get(key)}


def table(evals: dict[str, dict], interference: dict[str, dict]) -> dict:
    """{domain: {headline metrics and their _base, <TASK>: {rouge_l, rouge_l_base, n}, on: {other: {...}}}}."""
    out = {}
    for domain in sorted(evals):
        result = evals[domain]
        base, tuned = result["baseline"], result["finetuned"]
        row: dict = {}
        # First: what the users asked (domains/<name>/questions.yaml), before what our templates ask.
        if questions := compare_keys(result):
            row["questions"] = questions
        if "judge" in result:  # eval.judge.val: the judge's rate on val too
            row["judge_rate"] = result["judge"]["finetuned"]["semantic_match"]
            row["judge_rate_base"] = result["judge"]["baseline"]["semantic_match"]
        for key in HEADLINE:
            if key in tuned["overall"]:
                row.update(_pair(base["overall"], tuned["overall"], key))
        answered = sorted(t for t in tuned if t not in ("overall", REFUSAL_TASK))
        if answered:
            # Each task counted once: val is an example count, and refusals (one fixed sentence, learned first)
            # outnumber every other task of a small domain, so `rouge_l` alone mostly says how well it refuses.
            row["rouge_l_tasks"] = statistics.fmean(tuned[t]["rouge_l"] for t in answered)
            row["rouge_l_tasks_base"] = statistics.fmean(base.get(t, {}).get("rouge_l", 0.0) for t in answered)
        for task in sorted(t for t in tuned if t != "overall"):
            row[task] = {"n": tuned[task]["n"], **_pair(base.get(task, {}), tuned[task], "rouge_l")}
        if domain in interference:
            row["on"] = interference[domain]["on"]
        out[domain] = row
    return out


def _flat(row: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def headline(compared: dict) -> dict:
    """{"<domain>.<key>": value} for the HEADLINE_KEYS of `table`'s rows, key by key: every domain's first key, then
    every domain's second, so the columns a terminal shows first are one number of every domain, not every number of
    the first domain. Flat dotted keys, not nested: a nested file's columns would come domain by domain."""
    rows = {domain: _flat(row) for domain, row in compared.items()}
    return {
        f"{domain}.{key}": row[key]
        for key in HEADLINE_KEYS
        for domain, row in rows.items()
        if row.get(key) is not None
    }


def _num(value) -> str:
    return "" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "" if value is None else f"{value:.0%}"


def markdown(compared: dict) -> str:
    lines = [
        "# Every adapter, every task",
        "",
        "ROUGE-L of each domain's adapter on its own val set, by task, against the untuned base (evaluate stages).",
        "`all` is the mean over val examples, in which refusals weigh as much as their count; the mean of tasks",
        "counts every other task once.",
        "",
        "| adapter | task | n | base | fine-tuned | delta |",
        "|---|---|---|---|---|---|",
    ]
    for domain, row in compared.items():
        lines.append(
            f"| **{domain}** | all | | {_num(row.get('rouge_l_base'))} | {_num(row.get('rouge_l'))} | "
            f"{_num((row.get('rouge_l') or 0) - (row.get('rouge_l_base') or 0))} |"
        )
        if "rouge_l_tasks" in row:
            lines.append(
                f"| **{domain}** | mean of tasks but REFUSAL | | {_num(row['rouge_l_tasks_base'])} | "
                f"{_num(row['rouge_l_tasks'])} | {_num(row['rouge_l_tasks'] - row['rouge_l_tasks_base'])} |"
            )
        for task, t in row.items():
            if isinstance(t, dict) and "rouge_l" in t and task not in ("on", "questions"):
                delta = (t["rouge_l"] or 0) - (t["rouge_l_base"] or 0)
                lines.append(
                    f"| {domain} | {task} | {t['n']} | {_num(t['rouge_l_base'])} | {_num(t['rouge_l'])} | "
                    f"{_num(delta)} |"
                )
    lines += [
        "",
        "# Interference: each adapter on the other domains",
        "",
        "Each adapter answers a sample of every other domain's val examples and off-topic (refusal) questions with",
        "its own system prompt, beside the base on the same prompts. A negative ROUGE-L delta without refusing means",
        "the adapter answers that domain worse than the base did; refusing another domain's questions is a domain",
        "adapter keeping to its domain.",
        "",
        "| adapter | on | examples | ROUGE-L base | ROUGE-L adapter | delta | refuses them | off-topic refused |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for domain, row in compared.items():
        for other, r in row.get("on", {}).items():
            lines.append(
                f"| {domain} | {other} | {r['examples']} | {_num(r['rouge_l_base'])} | {_num(r['rouge_l'])} | "
                f"{_num(r['rouge_l_delta'])} | {_pct(r['refuses_in_domain'])} | "
                f"{_pct(r['refuses_off_topic'])} of {r['refusal_questions']} |"
            )
    return "\n".join(lines) + "\n"
