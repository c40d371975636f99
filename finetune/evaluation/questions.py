"""The domain's own questions (domains/<name>/questions.yaml): what its users ask, in their words, with a reference.

Val is made by the same templates as train, so it measures how well an adapter reproduces our phrasings; these
questions measure whether it answers what a person asks. Each entry:

    - question: my boiler shows F28 and won't light, what do I check first?
      reference: The gas supply: open the gas cock and check the supply pressure, then reset.
      keypoints: [gas cock, supply pressure]      # optional: each scored as covered or not (metrics.keypoint_coverage)
      expect: answer                              # or refuse: out of the domain, the model must refuse
      task: TROUBLESHOOTING                       # optional: that task's format check from tasks.yaml
      source: manual.md                           # optional: the document (raw/…) the judge is shown beside it

A refused question needs no reference (generate.refusal is the one). The chat JSONL form (questions.jsonl) is the
same questions as conversations: {"messages": [{"role": "user", …}, {"role": "assistant", …}]} plus the optional
keys above on the line. A bad entry stops with `PATH:LINE: what is wrong`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finetune.io import InputError, content_id, read_jsonl

QUESTION_TASK = "QUESTION"  # the task of an answered question that names none: no format check
REFUSAL_TASK = "REFUSAL"  # metrics.score_group counts refusal accuracy on this task's rows


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1)
    reference: str | None = None
    keypoints: list[str] = Field(default_factory=list)
    expect: Literal["answer", "refuse"] = "answer"
    task: str | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _reference(self) -> Question:
        if self.expect == "answer" and not (self.reference or "").strip():
            raise ValueError("reference: an answered question needs its reference answer")
        return self


class QuestionFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty at first: a new domain's file may say `questions: []` until its users' questions are written.
    questions: list[Question] = Field(default_factory=list)


def _error(e: ValidationError) -> tuple[tuple, str]:
    # A misspelt key also makes its intended key "missing": name the misspelling first.
    error = min(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
    loc, msg = tuple(error["loc"]), error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = f"not a key here (valid: {', '.join(Question.model_fields)})"
    elif error["type"] == "missing":
        msg = "is missing"
    elif msg.startswith("reference: "):
        loc, msg = (*loc, "reference"), msg.removeprefix("reference: ")
    elif error["type"] == "literal_error":
        msg = f"{msg[0].lower()}{msg[1:]} (got {error.get('input')!r})"
    elif error["type"] == "string_type":
        # YAML reads 4.5, 0x5A or yes as a number or a boolean: the fix is quotes, not another value.
        msg = f"expected text, got {error.get('input')!r} (put it in quotes)"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return loc, f"{'.'.join(str(p) for p in loc)}: {msg}{more}"


def _load_yaml(p: Path, text: str) -> list[Question]:
    # The task file's YAML reader and line finder: one way to locate an error.
    from finetune.generation.taskfile import _line, read_yaml

    data, node = read_yaml(p, text)
    if data is None:  # nothing but comments: no questions yet
        return []
    if isinstance(data, list):  # a bare list of entries reads as the `questions:` list
        data, node = {"questions": data}, yaml.MappingNode("", [(yaml.ScalarNode("", "questions"), node)])
    if not isinstance(data, dict):
        raise InputError(p, "expected a mapping with a `questions:` list")
    try:
        return list(QuestionFile.model_validate(data).questions)
    except ValidationError as e:
        loc, msg = _error(e)
        raise InputError(p, msg, _line(node, loc)) from None


def _load_chat(p: Path) -> list[Question]:
    out = []
    for lineno, record in read_jsonl(p):
        messages = record.pop("messages", None)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise InputError(p, "messages: expected a list of {role, content}", lineno)
        said = {m.get("role"): m.get("content") for m in messages}
        if "user" not in said:
            raise InputError(p, "messages: no user turn (the question)", lineno)
        try:
            out.append(Question(question=said["user"], reference=said.get("assistant"), **record))
        except (ValidationError, TypeError) as e:
            msg = _error(e)[1] if isinstance(e, ValidationError) else str(e)
            raise InputError(p, msg, lineno) from None
    return out


def load(path: str | os.PathLike) -> list[Question]:
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "question file not found (write domains/<name>/questions.yaml, docs/questions.md)")
    if p.suffix == ".jsonl":
        return _load_chat(p)
    return _load_yaml(p, p.read_text(encoding="utf-8"))


def examples(questions: list[Question], system_prompt: str, refusal: str) -> list[dict]:
    """The questions as val-shaped chat examples (system prompt, user question, reference answer), so that they are
    answered and scored exactly as val is."""
    out = []
    for q in questions:
        task = REFUSAL_TASK if q.expect == "refuse" else (q.task or QUESTION_TASK)
        reference = q.reference if q.reference else refusal
        messages = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": q.question},
            {"role": "assistant", "content": reference},
        ]
        meta = {"keypoints": q.keypoints} if q.keypoints else {}
        out.append(
            {
                "id": content_id(q.question, reference),
                "task": task,
                "source": q.source or "",
                "messages": messages,
                "meta": meta,
                "checked": q.task is not None or q.expect == "refuse",  # has a format check to pass
            }
        )
    return out


def scores(rows: list[dict]) -> dict:
    """metrics.score_group over the questions, with the format check counted only where a question has one (a task
    of its own, or a refusal), and `questions` answered by neither check."""
    from finetune.evaluation.metrics import score_group

    out = score_group([{**r, "format_valid": bool(r["format_valid"])} for r in rows])
    checked = [r for r in rows if r.get("checked")]
    del out["format_valid"]
    # Refusals score 1.0 whenever refused (one fixed sentence, learned first), so an adapter that refuses everything
    # looks fine on `rouge_l`; this is the score on the questions it must answer.
    answered = [r for r in rows if r["task"] != REFUSAL_TASK]
    if answered:
        from finetune.evaluation.metrics import rouge_l

        out["rouge_l_answered"] = sum(rouge_l(r["prediction"], r["reference"]) for r in answered) / len(answered)
    if checked:
        out["format_valid"] = sum(bool(r["format_valid"]) for r in checked) / len(checked)
    return out


def answer(model, tokenizer, qexamples: list[dict], eval_params, refusal: str, desc: str, tasks) -> list[dict]:
    """A local model's scored answers to the questions, as predict gives val's, with each question's own keys."""
    from finetune.evaluation.predict import predict

    rows, _ = predict(model, tokenizer, qexamples, eval_params, refusal, desc, tasks)
    for row, ex in zip(rows, qexamples, strict=True):
        row["checked"], row["source"] = ex["checked"], ex["source"]
    return rows


def row_scores(row: dict) -> dict:
    """One answer's own scores, for the side-by-side pages."""
    from finetune.evaluation.metrics import exact_match, rouge_l

    out = {"prediction": row["prediction"], "rouge_l": rouge_l(row["prediction"], row["reference"])}
    out |= {"exact_match": exact_match(row["prediction"], row["reference"]), "refused": row["refused"]}
    if row.get("checked"):
        out["format_valid"] = bool(row["format_valid"])
    if row.get("keypoint_coverage") is not None:
        out["keypoint_coverage"] = row["keypoint_coverage"]
    if "judge" in row:
        out["judge"] = row["judge"]
    return out


def side_by_side(qexamples: list[dict], base_rows: list[dict], tuned_rows: list[dict]) -> list[dict]:
    """One record per question: the question, its reference, and both models' answers with their scores."""
    return [
        {
            "id": ex["id"],
            "question": b["prompt"],
            "reference": b["reference"],
            "task": ex["task"],
            "source": ex["source"],
            "base": row_scores(b),
            "finetuned": row_scores(t),
        }
        for ex, b, t in zip(qexamples, base_rows, tuned_rows, strict=True)
    ]


def section(base_rows: list[dict], tuned_rows: list[dict], val: dict, judged: dict | None) -> dict:
    """The `questions` section of metrics/eval/<domain>.json: both models' scores, their difference, the judge's
    counts, and the template gap: how much better the adapter does on val (our templates' wording) than on the
    users' own questions."""
    from finetune.evaluation.metrics import delta

    base, tuned = scores(base_rows), scores(tuned_rows)
    out = {"n": len(tuned_rows), "baseline": base, "finetuned": tuned, "delta": delta({"o": tuned}, {"o": base})["o"]}
    out["template_gap"] = {
        "rouge_l": val["finetuned"]["overall"]["rouge_l"] - tuned["rouge_l"],
        "rouge_l_base": val["baseline"]["overall"]["rouge_l"] - base["rouge_l"],
    }
    if judged is not None:
        out["judge"] = judged
    return out
