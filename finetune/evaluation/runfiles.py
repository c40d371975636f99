"""One pipeline run's outputs, read back for the HTML report: the metrics of every stage, the training curves and
both models' answers. A page is a function of a list of these, so one report can later show several domains."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from finetune.io import InputError, load_jsonl, read_json


@dataclass(frozen=True)
class RunFiles:
    """Where one run's outputs lie (the paths dvc.yaml gives the stages that write them)."""

    extract: Path
    rejects: Path
    generate: Path
    balance: Path
    validation: Path
    data_docs: Path  # the Data Docs folder; only linked to, never read
    train: Path
    curves: Path  # the DVCLive folder of the train stage
    eval: Path
    baseline_predictions: Path
    predictions: Path
    quality: Path | None = None  # generate's counts of bad examples (metrics/quality/<domain>.json)
    quality_examples: Path | None = None  # and the worst few of each problem
    questions: Path | None = None  # evaluate's answers to the domain's own questions (data/questions/<domain>.jsonl)


@dataclass(frozen=True)
class Run:
    name: str
    files: RunFiles
    extract: dict
    rejects: list
    generate: dict
    balance: dict
    validation: dict
    train: dict
    curves: dict[str, list[tuple[float, float]]]  # "loss", "eval/loss", … -> [(step, value)]
    eval: dict
    baseline_rows: list[dict]
    tuned_rows: list[dict]
    quality: dict = field(default_factory=dict)  # empty: the run has no quality counts
    quality_examples: dict = field(default_factory=dict)  # problem -> [{id, question, answer}], worst first
    questions: list = field(default_factory=list)  # [{question, reference, base, finetuned}]: empty without them


# DVCLive's file for each curve, below <live dir>/plots/metrics/. Train-side values at the top, val under eval/.
CURVES = ("loss", "eval/loss", "mean_token_accuracy", "eval/mean_token_accuracy", "learning_rate")


def read_curve(path: Path) -> list[tuple[float, float]]:
    """A DVCLive .tsv as (step, value) points; a missing file is an empty curve (e.g. no eval during training)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        value = next((c for c in reader.fieldnames or [] if c not in ("step", "timestamp")), None)
        points = []
        for lineno, row in enumerate(reader, start=2):
            try:
                points.append((float(row["step"]), float(row[value])))
            except (TypeError, ValueError, KeyError):
                raise InputError(path, "expected numeric step and value columns", lineno) from None
    return points


def load_run(files: RunFiles, name: str = "") -> Run:
    return Run(
        name=name,
        files=files,
        extract=read_json(files.extract, "extract metrics"),
        rejects=read_json(files.rejects, "extract rejects list"),
        generate=read_json(files.generate, "generate metrics"),
        balance=read_json(files.balance, "balance metrics"),
        validation=read_json(files.validation, "validation metrics"),
        train=read_json(files.train, "training metrics"),
        curves={c: read_curve(files.curves / "plots" / "metrics" / f"{c}.tsv") for c in CURVES},
        eval=read_json(files.eval, "evaluation metrics"),
        baseline_rows=load_jsonl(files.baseline_predictions),
        tuned_rows=load_jsonl(files.predictions),
        quality=read_json(files.quality, "quality counts of generate") if files.quality else {},
        quality_examples=(
            read_json(files.quality_examples, "worst examples of generate") if files.quality_examples else {}
        ),
        questions=load_jsonl(files.questions) if files.questions else [],
    )
