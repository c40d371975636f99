"""stages/metrics.py: the scores evaluate reports, per task and overall, and their difference to the baseline."""

from __future__ import annotations

import pytest

from finetune.evaluation.metrics import (
    delta,
    exact_match,
    keypoint_coverage,
    rouge_l,
    score,
    scored_rows,
    timing,
)
from finetune.generation.taskfile import load, parse
from tests.conftest import HEATING_TASKS

REFUSAL = "I can only help with Brenntal heating and ventilation products."


def test_rouge_l_of_identical_text_is_one():
    assert rouge_l("Top up to 1.5 bar and bleed", "Top up to 1.5 bar and bleed") == 1.0


def test_rouge_l_of_text_with_no_common_word_is_zero():
    assert rouge_l("Canberra is the capital", "Top up to 1.5 bar") == 0.0


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence():
    # LCS "the burner" = 2 words; precision 2/3, recall 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert rouge_l("clean the burner", "inspect the gas burner") == pytest.approx(4 / 7)


def test_rouge_l_ignores_case_and_spacing():
    assert rouge_l("TOP up\n to  1.5 bar", "top up to 1.5 BAR") == 1.0


def test_rouge_l_scores_non_ascii_words_whole():
    # A tokenizer that drops non-ASCII letters would see "gr e" in both and score 2/3; whole words share 1 of 2.
    assert rouge_l("Größe Öl", "Größe Wasser") == pytest.approx(0.5)
    assert rouge_l("Öl", "Äl") == 0.0
    assert rouge_l("Wärmetauscher Größe", "wärmetauscher größe") == 1.0


def test_rouge_l_of_empty_texts():
    assert rouge_l("", "") == 1.0
    assert rouge_l("", "24 kW") == 0.0
    assert rouge_l("24 kW", "  ") == 0.0


def test_exact_match_normalises_case_and_whitespace_only():
    assert exact_match("  Brenntal Calora CA-20C\n combi   boiler ", "brenntal calora ca-20c combi boiler") == 1.0
    assert exact_match("24 kW.", "24 kW") == 0.0
    assert exact_match("24 kW", "24 kg") == 0.0


def test_keypoint_coverage_counts_the_key_points_whose_content_words_were_said():
    steps = ["Isolate the gas and electrical supplies.", "Clean the burner with the brush.", "Check the flue seals."]
    assert keypoint_coverage(
        "First isolate the electrical and gas supplies, then clean the burner brush.", steps
    ) == pytest.approx(2 / 3)
    assert keypoint_coverage(" ".join(steps), steps) == 1.0
    assert keypoint_coverage("Call an engineer.", steps) == 0.0
    assert keypoint_coverage("anything", []) == 0.0


def test_keypoint_coverage_needs_most_content_words_of_a_point():
    # "isolate", "electrical", "supplies" of 3 content words -> 1/3 said -> below the 0.6 threshold
    assert keypoint_coverage("isolate", ["Isolate the gas and electrical supplies."]) == 0.0
    assert keypoint_coverage("isolate electrical supplies", ["Isolate the gas and electrical supplies."]) == 1.0


def row(task, prediction, reference, refused=False, format_valid=True, latency_ms=10.0, new_tokens=5):
    return {
        "task": task,
        "prediction": prediction,
        "reference": reference,
        "refused": refused,
        "format_valid": format_valid,
        "latency_ms": latency_ms,
        "new_tokens": new_tokens,
    }


ROWS = [
    row("SPEC", "24 kW", "24 kW"),
    row("SPEC", "32 kg", "24 kW", format_valid=False),
    row("REFUSAL", REFUSAL, REFUSAL, refused=True),
    row("QA", REFUSAL, "The CA-24C is a combi boiler.", refused=True),
]


def test_score_has_overall_and_one_entry_per_task_in_sorted_order():
    result = score(ROWS)
    assert list(result) == ["overall", "QA", "REFUSAL", "SPEC"]
    assert [result[k]["n"] for k in result] == [4, 1, 1, 2]
    for group in result.values():
        assert {
            "exact_match",
            "rouge_l",
            "bleu",
            "chrf",
            "format_valid",
        } <= set(group)
        assert not {k for k in group if "latency" in k or "per_second" in k}  # hashed outputs hold no timings


def test_score_values_per_task_and_overall():
    result = score(ROWS)
    assert result["SPEC"]["exact_match"] == 0.5 and result["SPEC"]["format_valid"] == 0.5
    assert result["overall"]["exact_match"] == 0.5  # SPEC 1 of 2, REFUSAL 1, QA 0
    assert result["overall"]["refusal_accuracy"] == 1.0
    assert result["overall"]["false_refusal"] == pytest.approx(1 / 3)  # QA refused out of 3 in-domain questions
    assert "refusal_accuracy" not in result["SPEC"]
    assert 0 <= result["overall"]["bleu"] <= 1 and 0 <= result["overall"]["chrf"] <= 1


def test_timing_has_the_latency_and_throughput_of_each_task_and_overall():
    gens = [{"latency_ms": ms, "new_tokens": 5} for ms in (10.0, 30.0, 10.0, 10.0)]
    result = timing(ROWS, gens)
    assert list(result) == ["overall", "QA", "REFUSAL", "SPEC"]
    assert result["overall"]["tokens_per_second"] == pytest.approx(20 / 0.06)  # 4 x 5 tokens in 60 ms
    assert result["SPEC"]["latency_p50_ms"] == pytest.approx(20.0)
    assert result["QA"] == {"latency_p50_ms": 10.0, "latency_p95_ms": 10.0, "tokens_per_second": 500.0}


def test_delta_is_finetuned_minus_baseline_for_metrics_in_both():
    baseline = {
        "overall": {"n": 4, "rouge_l": 0.25, "exact_match": 0.0, "refusal_accuracy": 0.5},
        "SPEC": {"n": 2, "rouge_l": 0.5},
    }
    finetuned = {
        "overall": {"n": 4, "rouge_l": 0.75, "exact_match": 0.5, "keypoint_coverage": 0.3},
        "SPEC": {"n": 2, "rouge_l": 0.25},
        "QA": {"n": 1, "rouge_l": 1.0},
    }
    assert delta(finetuned, baseline) == {
        "overall": {"rouge_l": 0.5, "exact_match": 0.5},  # n is a count, not a metric
        "SPEC": {"rouge_l": -0.25},
    }


def test_scored_rows_apply_each_task_format_check_and_detect_refusals():
    def ex(i, task, answer, meta=None):
        msgs = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": f"[{task}] q{i}"},
            {"role": "assistant", "content": answer},
        ]
        return {"id": f"e{i}", "task": task, "source": "s", "messages": msgs, "meta": meta or {}}

    examples = [
        ex(1, "SPEC", "24 kW", {"unit": "kW"}),
        ex(
            2,
            "PROCEDURE",
            "1. Isolate the supply.\n2. Clean the burner.",
            {"keypoints": ["Isolate the supply.", "Clean the burner."]},
        ),
        ex(3, "REFUSAL", REFUSAL, {"refusal": REFUSAL}),
    ]
    gens = [
        {"prediction": p, "latency_ms": 1.0, "new_tokens": 3}
        for p in ("about 24 kg", "1. Isolate the supply.\n2. Call an engineer.", f"Sorry. {REFUSAL}")
    ]
    rows = scored_rows(examples, gens, REFUSAL, load(HEATING_TASKS))  # the heating task file holds the checks
    assert [r["format_valid"] for r in rows] == [False, True, False]  # wrong unit; numbered; not exactly the refusal
    assert [r["refused"] for r in rows] == [False, False, True]
    assert [r["keypoint_coverage"] for r in rows] == [None, 0.5, None]
    assert rows[1]["prompt"] == "[PROCEDURE] q2" and rows[1]["reference"].startswith("1. Isolate")
    with pytest.raises(ValueError):
        scored_rows(examples, gens[:2], REFUSAL, load(HEATING_TASKS))  # every example needs its generation


def test_scored_rows_take_format_checks_from_the_task_file_given():
    def ex(task, answer):
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]
        return {"id": task, "task": task, "source": "s", "messages": msgs, "meta": {}}

    tasks = parse(
        {
            "tasks": {
                "YESNO": {
                    "prefix": "[YN]",
                    "builder": "refusal",
                    "questions": ["?"],
                    "check": {"name": "one_of", "options": ["yes", "no"]},
                },
            }
        }
    )
    gens = [{"prediction": p, "latency_ms": 1.0, "new_tokens": 1} for p in ("Yes", "maybe", "yes")]
    rows = scored_rows([ex("YESNO", "yes"), ex("YESNO", "no"), ex("UNKNOWN", "yes")], gens, REFUSAL, tasks)
    assert [r["format_valid"] for r in rows] == [True, False, False]  # a task the file lacks has no valid format


def test_every_task_with_key_points_in_its_meta_is_scored_on_them():
    def ex(i, task, meta):
        msgs = [{"role": "user", "content": f"[{task}] q{i}"}, {"role": "assistant", "content": "a"}]
        return {"id": f"e{i}", "task": task, "source": "s", "messages": msgs, "meta": meta}

    notes = ["Connect the outdoor sensor to terminals 1 and 2.", "Use shielded cable above 20 metres."]
    examples = [ex(1, "WIRING", {"keypoints": notes}), ex(2, "SPEC", {"unit": "kW"}), ex(3, "QA", {"keypoints": []})]
    gens = [
        {"prediction": p, "latency_ms": 1.0, "new_tokens": 3}
        for p in ("- Connect the outdoor sensor to terminals 1 and 2.", "24 kW", "anything")
    ]
    rows = scored_rows(examples, gens, REFUSAL, load(HEATING_TASKS))
    assert [r["keypoint_coverage"] for r in rows] == [0.5, None, None]  # one of two notes said; no key points
    scores = score(rows)
    assert scores["WIRING"]["keypoint_coverage"] == 0.5
    assert "keypoint_coverage" not in scores["SPEC"] and "keypoint_coverage" not in scores["QA"]
    assert scores["overall"]["keypoint_coverage"] == 0.5  # averaged over the rows that have key points only
