"""`finetune balance`: a split grouped by source, then per-task balancing of train by up-sampling minorities and
capping the majority; reproducible for a seed."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from finetune.documents.corpus import run as extract
from finetune.generation.examples import run as generate
from finetune.generation.splits import cap_val, run, split, targets
from finetune.generation.taskfile import load
from finetune.io import load_jsonl, write_jsonl
from finetune.params import Balance, Generate, Split
from stages.balance import cli
from tests.conftest import HEATING_TASKS, REPO, assert_ok, invoke, repo_params, row_labels, write_params


def make_examples(task: str, n_sources: int, per_source: int) -> list[dict]:
    """`per_source` phrasings of one fact per source, as generate writes them."""
    out = []
    for s in range(n_sources):
        source = f"domains/heating/raw/{task.lower()}.md#h=Section {s}"
        for k in range(per_source):
            msgs = [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": f"[{task}] q{s}.{k}"},
                {"role": "assistant", "content": f"answer {s}"},
            ]
            out.append(
                {
                    "id": f"{task}-{s}-{k}",
                    "task": task,
                    "source": source,
                    "block_id": f"b-{task}-{s}",
                    "messages": msgs,
                    "meta": {},
                }
            )
    return out


# Skewed like the real corpus: one task has 12x the examples of another.
SKEWED = make_examples("TERMINOLOGY", 30, 2) + make_examples("WIRING", 5, 1) + make_examples("SPEC", 10, 2)


def params(max_ratio=2.0, max_upsample=10, val_fraction=0.2, seed=42) -> dict:
    p = repo_params()
    p["balance"].update(max_ratio=max_ratio, max_upsample=max_upsample, seed=seed)
    p["split"].update(val_fraction=val_fraction, seed=seed)
    return p


def balance(root, examples, p):
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "examples.jsonl", examples)
    args = ["--input", root / "examples.jsonl", "--train", root / "train.jsonl", "--val", root / "val.jsonl"]
    args += ["--metrics", root / "balance.json", "--plot", root / "dist.csv"]
    assert_ok(invoke(cli, args + ["--params", write_params(root / "params.yaml", p)]))
    return (
        load_jsonl(root / "train.jsonl"),
        load_jsonl(root / "val.jsonl"),
        json.loads((root / "balance.json").read_text()),
    )


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    return balance(tmp_path_factory.mktemp("balance"), SKEWED, params())


def original_id(example: dict) -> str:
    return example["id"].split("~")[0]


def test_no_source_is_in_both_splits(balanced):
    train, val, _ = balanced
    assert val
    assert not {e["source"] for e in train} & {e["source"] for e in val}


def test_every_example_is_in_exactly_one_split(balanced):
    train, val, _ = balanced
    kept = {original_id(e) for e in train} | {e["id"] for e in val}
    assert {e["id"] for e in val}.isdisjoint(original_id(e) for e in train)
    # The majority task is capped, so some of its originals may be left out; nothing else is lost.
    assert {e["id"] for e in SKEWED if e["task"] != "TERMINOLOGY"} <= kept


def test_task_ratio_in_train_is_at_most_max_ratio_after_balancing(balanced):
    train, _, report = balanced
    counts = Counter(e["task"] for e in train)
    assert report["ratio_before"] > 2.0  # the input needed balancing
    assert max(counts.values()) / min(counts.values()) <= 2.0
    assert report["ratio_after"] == max(counts.values()) / min(counts.values())
    assert report["train_after"] == dict(sorted(counts.items()))


def test_upsampled_copies_have_numbered_ids_and_are_only_in_train(balanced):
    train, val, _ = balanced
    originals = {e["id"]: e for e in train if "~" not in e["id"]}
    copies = [e for e in train if "~" in e["id"]]
    assert copies  # WIRING and SPEC were raised
    for c in copies:
        base, k = c["id"].split("~")
        assert int(k) >= 2
        assert {**c, "id": base} == originals[base]  # a copy is its original under a new id
    assert not [e for e in val if "~" in e["id"]]
    assert len({e["id"] for e in train}) == len(train)


def test_minority_tasks_are_raised_by_whole_copies_before_random_extras(balanced):
    train, _, _ = balanced
    wiring = Counter(original_id(e) for e in train if e["task"] == "WIRING")
    assert max(wiring.values()) - min(wiring.values()) <= 1  # every original about equally often


def test_same_seed_gives_byte_identical_outputs(tmp_path):
    balance(tmp_path / "a", SKEWED, params())
    balance(tmp_path / "b", SKEWED, params())
    for name in ("train.jsonl", "val.jsonl", "balance.json", "dist.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_another_split_seed_holds_out_other_sources():
    p = params()
    _, val_a, _ = run(SKEWED, Balance(**p["balance"]), Split(**p["split"]))
    _, val_b, _ = run(SKEWED, Balance(**p["balance"]), Split(**{**p["split"], "seed": 7}))
    assert {e["source"] for e in val_a} != {e["source"] for e in val_b}


def val_sources_per_task(val: list[dict]) -> dict[str, int]:
    return dict(Counter(task for _, task in {(e["source"], e["task"]) for e in val}))


def test_val_holds_val_fraction_of_the_sources_spread_over_the_tasks():
    # 45 sources x 0.2 = 9: TERMINOLOGY 30 x 0.2 = 6, SPEC 10 x 0.2 = 2, WIRING 5 x 0.2 = 1.
    _, val = split(SKEWED, 0.2, seed=0)
    assert val_sources_per_task(val) == {"TERMINOLOGY": 6, "SPEC": 2, "WIRING": 1}
    # 45 x 0.25 = 11.25 -> 11: floors 7 + 2 + 1 = 10, the last source to the largest remainder (SPEC's 2.5 and
    # TERMINOLOGY's 7.5 tie; the name decides, so the split never depends on dict order).
    _, val = split(SKEWED, 0.25, seed=0)
    assert val_sources_per_task(val) == {"TERMINOLOGY": 7, "SPEC": 3, "WIRING": 1}


def test_the_share_of_a_task_with_one_source_goes_to_the_others():
    # 4 sources x 0.5 = 2 held out; QA's single source must stay in train, so SPEC gives both.
    _, val = split(make_examples("QA", 1, 3) + make_examples("SPEC", 3, 1), 0.5, seed=0)
    assert val_sources_per_task(val) == {"SPEC": 2}


@pytest.mark.parametrize("seed", [42, 1, 2])
def test_the_split_holds_out_val_fraction_of_the_sources_and_the_cap_keeps_val_share_on_the_sample_corpus(seed):
    p = repo_params()
    p["generate"]["phrasings_per_item"] = 2
    blocks, _ = extract(REPO / "domains" / "heating" / "raw", rows=row_labels(p))
    examples = generate(blocks, Generate.model_validate(p["generate"]), load(HEATING_TASKS))
    train, val, report = run(examples, Balance(**p["balance"]), Split(**{**p["split"], "seed": seed}))
    n_sources = len({e["source"] for e in examples})
    assert abs(report["split_source_share"] - p["split"]["val_fraction"]) <= 0.5 / n_sources  # off by rounding only
    distinct = len({original_id(e) for e in train})
    assert report["val_share"] == len(val) / (len(val) + distinct)  # what validate's gate measures
    assert abs(report["val_share"] - p["split"]["val_fraction"]) <= p["validate"]["val_fraction_tolerance"]
    assert {e["task"] for e in val} == {e["task"] for e in examples}  # every task is measured


@pytest.mark.slow  # a tokenizer and Great Expectations: ~10 s
def test_validate_gates_the_share_balance_made_even_after_it_capped_train(tmp_path):
    from finetune.training.base_model import train_tokenizer
    from stages.validate import cli as validate_cli

    # No up-sampling: TERMINOLOGY is cut to 2x WIRING's 4 train examples, and its val with it.
    _, _, report = balance(tmp_path, SKEWED, params(max_upsample=1))
    assert report["train_after"] == {"SPEC": 8, "TERMINOLOGY": 8, "WIRING": 4}
    assert report["val_before"] == {"SPEC": 4, "TERMINOLOGY": 12, "WIRING": 1}  # 6 sources x 2 phrasings
    assert report["val"] == report["val_cap"] == {"SPEC": 2, "TERMINOLOGY": 2, "WIRING": 1}  # round(n_train / 4)
    train_tokenizer([m["content"] for e in SKEWED for m in e["messages"]], vocab_size=400).save_pretrained(
        tmp_path / "tok"
    )
    args = ["--train", tmp_path / "train.jsonl", "--val", tmp_path / "val.jsonl", "--model", tmp_path / "tok",
        "--train-out", tmp_path / "out/train.jsonl", "--val-out", tmp_path / "out/val.jsonl",
        "--metrics", tmp_path / "validation.json", "--docs", tmp_path / "docs", "--params", tmp_path / "params.yaml"]  # fmt: skip
    invoke(validate_cli, args)
    gate = json.loads((tmp_path / "validation.json").read_text())["expectations"]["val_share"]
    assert gate["success"] and gate["observed"] == report["val_share"] == 5 / 25


def test_val_is_cut_per_task_in_step_with_train():
    # A dominant task (200 sources) next to two small ones: balance cuts its train to 2 x 16 = 32 examples.
    examples = make_examples("EXPLANATION", 200, 1) + make_examples("SPEC", 20, 1) + make_examples("QA", 20, 1)
    p = params(max_upsample=1)
    _, val, report = run(examples, Balance(**p["balance"]), Split(**p["split"]))
    assert report["train_after"] == {"EXPLANATION": 32, "QA": 16, "SPEC": 16}
    assert report["val_before"] == {"EXPLANATION": 40, "QA": 4, "SPEC": 4}
    # At most round(n_train x 0.2 / 0.8): 8 for EXPLANATION, 4 for the others (which keep their 4).
    assert report["val_cap"] == {"EXPLANATION": 8, "QA": 4, "SPEC": 4}
    assert report["val"] == dict(sorted(Counter(e["task"] for e in val).items())) == {
        "EXPLANATION": 8, "QA": 4, "SPEC": 4
    }  # fmt: skip
    assert report["n_val_cut"] == 32
    assert report["val_share"] == 16 / (16 + 64)


def test_the_val_cap_keeps_whole_sources_and_cuts_one_at_most():
    # 10 sources of 3 examples in val; a cap of 7 keeps two whole sources and 1 example of a third.
    val = make_examples("SPEC", 10, 3)
    kept = cap_val(val, {"SPEC": 28}, 0.2, seed=0)  # round(28 x 0.25) = 7
    per_source = Counter(e["source"] for e in kept)
    assert len(kept) == 7 and sorted(per_source.values()) == [1, 3, 3]
    assert kept == [e for e in val if e in kept]  # in the split's order
    assert cap_val(val, {"SPEC": 28}, 0.2, seed=0) == kept  # the split seed decides which


def test_a_task_with_a_single_source_stays_in_train():
    train, val = split(make_examples("QA", 1, 3) + make_examples("SPEC", 10, 1), 0.5, seed=0)
    assert {e["task"] for e in val} == {"SPEC"}
    assert [e["task"] for e in train].count("QA") == 3


def test_targets_raise_minorities_and_cap_the_majority():
    # top 100 -> minorities raised towards ceil(100 / 2) = 50, at most 3x: B 10 -> 30, C 40 -> 50;
    # then the cap is floor(min 30 x 2) = 60, so A 100 -> 60.
    assert targets({"A": 100, "B": 10, "C": 40}, max_ratio=2.0, max_upsample=3) == {"A": 60, "B": 30, "C": 50}


def test_targets_cut_the_majority_when_up_sampling_is_limited():
    # B may grow only to 2 x 3 = 6, so A is cut to 6 x 2 = 12.
    assert targets({"A": 100, "B": 2}, max_ratio=2.0, max_upsample=3) == {"A": 12, "B": 6}


def test_targets_leave_a_balanced_mix_alone():
    assert targets({"A": 10, "B": 7, "C": 6}, max_ratio=2.0, max_upsample=10) == {"A": 10, "B": 7, "C": 6}


def test_plot_csv_has_a_before_and_an_after_bar_per_task(tmp_path, balanced):
    _, _, report = balanced
    balance(tmp_path, SKEWED, params())
    with (tmp_path / "dist.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["task"], r["split"]): int(r["count"]) for r in rows} == {
        (task, when): report[f"train_{when}"][task] for task in report["train_after"] for when in ("before", "after")
    }
    assert all(r["label"] == f"{r['task']} {r['split']}" for r in rows)


def test_a_task_too_small_to_learn_is_left_out_instead_of_capping_every_other_task():
    # One example of STEPS next to 40 of TABLE: as the smallest task it would have capped TABLE at 20.
    examples = make_examples("TABLE", 40, 1) + make_examples("STEPS", 1, 1) + make_examples("REFUSAL", 30, 1)
    p = params()
    train, val, report = run(examples, Balance(**p["balance"]), Split(**p["split"]))
    assert report["left_out_tasks"] == {"STEPS": 1}
    assert {e["task"] for e in train + val} == {"TABLE", "REFUSAL"}
    assert report["train_after"]["TABLE"] == report["train_before"]["TABLE"] > 20  # no longer cut to 2 x 10
