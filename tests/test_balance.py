"""`finetune balance`: a split grouped by source, then per-task balancing of train by up-sampling minorities and
capping the majority; reproducible for a seed."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from finetune.generation.splits import run, split, targets
from stages.balance import cli
from finetune.documents.corpus import run as extract
from finetune.generation.examples import run as generate
from finetune.io import load_jsonl, write_jsonl
from tests.conftest import REPO, assert_ok, invoke, repo_params, write_params
from finetune.params import Balance, Generate, Split


def make_examples(task: str, n_sources: int, per_source: int) -> list[dict]:
    """`per_source` phrasings of one fact per source, as generate writes them."""
    out = []
    for s in range(n_sources):
        source = f"data/raw/{task.lower()}.md#h=Section {s}"
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


@pytest.mark.parametrize("seed", [42, 1, 2])
def test_val_share_is_near_val_fraction_on_the_sample_corpus(seed):
    p = repo_params()
    p["generate"]["phrasings_per_item"] = 2
    blocks, _ = extract(REPO / "data" / "raw")
    examples = generate(blocks, Generate.model_validate(p["generate"]))
    train, val, report = run(examples, Balance(**p["balance"]), Split(**{**p["split"], "seed": seed}))
    fraction, tolerance = p["split"]["val_fraction"], p["validate"]["val_fraction_tolerance"]
    # Of the examples, before balancing changes train's size ...
    assert report["val_share"] == pytest.approx(len(val) / (len(val) + len(split(examples, fraction, seed)[0])))
    assert report["val_share"] == pytest.approx(fraction, abs=tolerance)
    # ... and of the sources in the outputs, which is what validate gates on.
    train_sources, val_sources = {e["source"] for e in train}, {e["source"] for e in val}
    assert len(val_sources) / len(train_sources | val_sources) == pytest.approx(fraction, abs=tolerance)
    assert {e["task"] for e in val} == {e["task"] for e in examples}  # every task is measured


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
