"""A corpus where one document dominates (issue #13): extract -> generate -> balance -> validate still passes, and
val is cut per task in step with train instead of keeping thousands of examples of the dominant task.

The corpus is generated here: one long Markdown document of many Explanation sections, and a few small documents of
plain sections and step lists.
"""

from __future__ import annotations

import json
import random

import pytest

from finetune.io import load_jsonl
from tests.conftest import HEATING_TASKS, assert_ok, invoke, params_file

N_SECTIONS = 600  # EXPLANATION 480 train examples next to 10 of each small task (raised 10x to 100): cut to 200
WORDS = ["valve", "pump", "sensor", "burner", "flue", "sump", "relay", "filter", "duct", "fan", "coil", "gauge"]


def sentence(rng: random.Random, i: int) -> str:
    return f"The {rng.choice(WORDS)} of unit {i} moves the {rng.choice(WORDS)} when the {rng.choice(WORDS)} is warm."


def dominant_document(n: int) -> str:
    rng = random.Random(0)
    parts = ["# Field Guide", "", "## Vento", ""]
    for i in range(n):
        parts += [f"### Explanation — Topic {i}", "", " ".join(sentence(rng, i) for _ in range(3)), ""]
    return "\n".join(parts)


def small_document(k: int) -> str:
    rng = random.Random(k)
    parts = [f"# Note {k}", ""]
    for j in range(4):
        parts += [f"## Care item {k}.{j}", "", " ".join(sentence(rng, 100 * k + j) for _ in range(2)), ""]
        parts += [
            f"## Steps for item {k}.{j}",
            "",
            *(f"{n}. Turn the {rng.choice(WORDS)} {n} times." for n in (1, 2, 3)),
        ]
        parts += [""]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def dominated(tmp_path_factory):
    from finetune.training.base_model import corpus_texts, train_tokenizer
    from stages.balance import cli as balance_cli
    from stages.extract import cli as extract_cli
    from stages.generate import cli as generate_cli
    from stages.validate import cli as validate_cli

    root = tmp_path_factory.mktemp("dominated")
    raw = root / "raw"
    raw.mkdir()
    (raw / "guide.md").write_text(dominant_document(N_SECTIONS), encoding="utf-8")
    for k in range(3):
        (raw / f"note{k}.md").write_text(small_document(k), encoding="utf-8")
    params = ["--params", params_file(root / "params.yaml")]  # the heating domain's params, unchanged
    assert_ok(invoke(extract_cli, ["--input", raw, "--output", root / "blocks.jsonl", "--metrics", root / "x.json",
                                   "--rejects", root / "rejects.json", *params]))  # fmt: skip
    assert_ok(invoke(generate_cli, ["--input", root / "blocks.jsonl", "--output", root / "examples.jsonl",
                                    "--metrics", root / "generate.json", "--tasks", HEATING_TASKS,
                                    *params]))  # fmt: skip
    assert_ok(invoke(balance_cli, ["--input", root / "examples.jsonl", "--train", root / "train.jsonl",
                                   "--val", root / "val.jsonl", "--metrics", root / "balance.json",
                                   "--plot", root / "dist.csv", *params]))  # fmt: skip
    # The tiny base's tokenizer, trained on the corpus as the base stage trains it (no model weights needed here).
    train_tokenizer(corpus_texts(load_jsonl(root / "blocks.jsonl")), 2048).save_pretrained(root / "tok")
    result = invoke(validate_cli, ["--train", root / "train.jsonl", "--val", root / "val.jsonl", "--model",
                                   root / "tok", "--train-out", root / "out/train.jsonl", "--val-out",
                                   root / "out/val.jsonl", "--metrics", root / "validation.json",
                                   "--docs", root / "docs", *params])  # fmt: skip
    return root, result


def test_a_dominated_corpus_passes_validate(dominated):
    root, result = dominated
    assert result.exit_code == 0, result.output
    metrics = json.loads((root / "validation.json").read_text())
    assert metrics["success"] and metrics["expectations"]["val_share"]["success"]


def test_val_of_the_dominant_task_is_cut_in_step_with_train(dominated):
    root, _ = dominated
    report = json.loads((root / "balance.json").read_text())
    before, after = report["train_before"]["EXPLANATION"], report["train_after"]["EXPLANATION"]
    assert before > 2 * after  # balance cut the dominant task in train ...
    assert report["val_before"]["EXPLANATION"] > 100  # ... where the split had held out a fifth of its sources
    for task, n in report["val"].items():  # and every task's val is at most a quarter of its train (0.2 / 0.8)
        assert n <= round(report["train_after"][task] * 0.25) == report["val_cap"][task], task
    assert report["val"]["EXPLANATION"] == report["val_cap"]["EXPLANATION"]
    assert report["n_val_cut"] == sum(report["val_before"].values()) - sum(report["val"].values()) == 70
    val = load_jsonl(root / "val.jsonl")
    assert len(val) == report["n_val"] and abs(report["val_share"] - 0.2) <= 0.05
    # Without the cut, val would be 154 of 154 + 338 distinct train examples: 31%, and the gate would fail.
    uncut = sum(report["val_before"].values())
    distinct = sum(min(report["train_before"][t], n) for t, n in report["train_after"].items())
    assert uncut / (uncut + distinct) > 0.25
