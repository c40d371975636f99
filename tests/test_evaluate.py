"""`finetune baseline` then `finetune evaluate` on the tiny base and adapter: per-task scores for both models and
their difference in metrics/eval/heating.json, a Markdown report with a PNG chart, and the CSV behind `dvc plots`."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest

from finetune.io import load_jsonl
from stages.baseline import cli as baseline_cli
from stages.evaluate import cli as evaluate_cli
from tests.conftest import HEATING_TASKS, assert_ok, invoke, typed


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, trained):
    root = tmp_path_factory.mktemp("eval")
    out = SimpleNamespace(
        base_predictions=root / "data/eval/heating/baseline_predictions.jsonl",
        base_scores=root / "data/eval/heating/baseline_scores.json",
        predictions=root / "data/eval/heating/finetuned_predictions.jsonl",
        metrics=root / "metrics/eval/heating.json",
        timing=root / "metrics/timing/eval/heating.json",
        report=root / "reports/heating/eval.md",
        plot=root / "reports/heating/eval_tasks.csv",
        val=trained.val,
        tasks={e["task"] for e in trained.val},
    )
    # val holds every task the tiny corpus feeds (the sample's eight and SECTION, from its preface), so the checks
    # below are about every task
    assert len(out.tasks) == 9
    common = ["--val", trained.splits.val, "--tasks", HEATING_TASKS, "--params", trained.params_file]
    assert_ok(
        invoke(
            baseline_cli,
            [
                "--model",
                trained.base,
                "--predictions",
                out.base_predictions,
                "--scores",
                out.base_scores,
                "--timing",
                root / "metrics/timing/baseline/heating.json",
                *common,
            ],
        )
    )
    assert_ok(
        invoke(
            evaluate_cli,
            [
                "--model",
                trained.base,
                "--adapter",
                trained.adapter,
                "--baseline-predictions",
                out.base_predictions,
                "--baseline-scores",
                out.base_scores,
                "--predictions",
                out.predictions,
                "--metrics",
                out.metrics,
                "--timing",
                out.timing,
                "--report",
                out.report,
                "--plot",
                out.plot,
                *common,
            ],
        )
    )
    out.result = json.loads(out.metrics.read_text())
    return out


def test_eval_json_has_baseline_finetuned_and_delta_each_with_overall_and_every_val_task(evaluated):
    result = evaluated.result
    assert set(result) == {"baseline", "finetuned", "delta"}
    for part in result.values():
        assert set(part) == {"overall"} | evaluated.tasks
    overall = result["finetuned"]["overall"]
    assert {"exact_match", "rouge_l", "format_valid", "refusal_accuracy", "false_refusal"} <= set(overall)
    assert overall["n"] == len(evaluated.val)
    assert sum(result["finetuned"][t]["n"] for t in evaluated.tasks) == len(evaluated.val)


def test_evaluate_s_outputs_hold_no_timing_and_its_timing_file_holds_latency_per_task(evaluated):
    # Every output of a DVC run is the same bytes for the same inputs, so `git status` stays clean after a rerun.
    outputs = [evaluated.metrics, evaluated.predictions, evaluated.report, evaluated.plot]
    for path in outputs:
        assert not [w for w in TIMING_WORDS[:4] if w in path.read_text(encoding="utf-8").lower()], path.name
    timing = json.loads(evaluated.timing.read_text())
    assert set(timing) == {"overall"} | evaluated.tasks
    assert timing["overall"]["latency_p50_ms"] > 0 and timing["overall"]["tokens_per_second"] > 0


def test_baseline_in_eval_json_is_the_baseline_stage_s_scores(evaluated):
    assert evaluated.result["baseline"] == json.loads(evaluated.base_scores.read_text())


def test_delta_is_finetuned_minus_baseline(evaluated):
    result = evaluated.result
    for group, metrics in result["delta"].items():
        for key, value in metrics.items():
            assert value == pytest.approx(result["finetuned"][group][key] - result["baseline"][group][key]), key


def test_predictions_hold_one_scored_row_per_val_example_for_each_model(evaluated):
    for path in (evaluated.base_predictions, evaluated.predictions):
        rows = load_jsonl(path)
        assert [r["id"] for r in rows] == [e["id"] for e in evaluated.val]
        assert [r["reference"] for r in rows] == [e["messages"][-1]["content"] for e in evaluated.val]
        assert all(isinstance(r["prediction"], str) for r in rows)


TIMING_WORDS = ("latency", "per_second", "seconds", "_ms", "time")


def keys_of(data) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in keys_of(v)}
    if isinstance(data, list):
        return {k for v in data for k in keys_of(v)}
    return set()


def run_baseline(root, tiny_base, tiny_splits, params_file):
    out = [root / "predictions.jsonl", root / "scores.json", root / "timing" / "baseline.json"]
    args = ["--model", tiny_base, "--val", tiny_splits.val, "--tasks", HEATING_TASKS, "--params", params_file]
    assert_ok(invoke(baseline_cli, [*args, "--predictions", out[0], "--scores", out[1], "--timing", out[2]]))
    return out


def test_baseline_outputs_are_the_same_bytes_on_every_run_and_latency_is_only_in_its_timing_file(
    tmp_path, tiny_base, tiny_splits, session_params_file
):
    # DVC hashes predictions and scores (cached outs): a timing in them would change dvc.lock on every `dvc repro`.
    first = run_baseline(tmp_path / "a", tiny_base, tiny_splits, session_params_file)
    second = run_baseline(tmp_path / "b", tiny_base, tiny_splits, session_params_file)
    for a, b in zip(first[:2], second[:2], strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
        assert not {k for k in keys_of(load_jsonl(a) if a.suffix == ".jsonl" else json.loads(a.read_text()))
                    if any(w in k for w in TIMING_WORDS)}, a.name  # fmt: skip
    timing = json.loads(first[2].read_text())  # metrics/timing/baseline/<domain>.json: no DVC output
    assert timing["overall"]["latency_p50_ms"] > 0 and timing["overall"]["tokens_per_second"] > 0


def test_evaluate_runs_the_base_with_the_adapter_merged_in(trained, small_params):
    import torch

    from finetune.training.models import load_base, load_merged, load_tokenizer

    ids = load_tokenizer(trained.base)("[SPEC] CA-24C: rated output?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = load_base(trained.base, typed(small_params).model)(ids).logits
        merged = load_merged(trained.base, trained.adapter, typed(small_params).model)
        tuned = merged(ids).logits
    assert not any("lora" in name for name, _ in merged.named_modules())  # merged: plain layers, no LoRA matmuls
    assert not torch.allclose(base, tuned)


def test_report_is_markdown_with_a_png_chart_and_a_row_per_task(evaluated):
    md = evaluated.report.read_text(encoding="utf-8")
    png = evaluated.report.with_suffix(".png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "![ROUGE-L per task](eval.png)" in md  # relative, so the report renders where it lies
    for task in evaluated.tasks:
        assert f"\n| {task} | 1 | " in md and f"\n### {task}\n" in md


def test_plot_csv_has_one_rouge_l_row_per_task_and_model(evaluated):
    with evaluated.plot.open() as f:
        rows = list(csv.DictReader(f))
    pairs = [(r["task"], r["model"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == {(t, m) for t in evaluated.tasks | {"overall"} for m in ("baseline", "finetuned")}
    for r in rows:
        assert float(r["rouge_l"]) == pytest.approx(evaluated.result[r["model"]][r["task"]]["rouge_l"], abs=1e-4)
        assert r["label"] == f"{r['task']} {r['model']}"
