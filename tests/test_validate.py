"""The validate stage: a clean tiny dataset passes; one run with every kind of breakage fails each expectation by name.

Great Expectations takes seconds to import, so the broken cases share one run (module-scoped fixtures).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from finetune.validation.frames import answer_of, copy_number, render_prompt, split_share
from stages.validate import cli
from tests.conftest import params_file

SYSTEM = "You answer questions about Calora heat pumps."
EXPECTATIONS = [
    f"{split}_{name}"
    for split in ("train", "val")
    for name in (
        "required_columns",
        "well_formed",
        "task_known",
        "fits_max_seq_len",
        "unique_ids",
        "unique_prompt_answer",
        "answer_not_repeated",
        "answer_max_chars",
    )
] + ["val_source_not_in_train", "val_prompt_not_in_train", "train_task_ratio", "val_share"]


def save_tiny_tokenizer(path):
    """The pipeline's own tokenizer builder (byte-level BPE + ChatML) on a few sentences: fast, offline, real."""
    from finetune.training.base_model import train_tokenizer

    train_tokenizer(
        ["What is the rated power of the CA-24C?", "The CA-24C draws 2.4 kW.", SYSTEM, "user assistant system"] * 10,
        vocab_size=400,
    ).save_pretrained(path)
    return path


def example(i, task, question=None, answer=None, source=None, messages=None):
    question = question or f"[{task.upper()}] Question {i} about model CA-{i}?"
    messages = messages or [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer or f"Answer {i}."},
    ]
    return {
        "id": f"ex{i}",
        "task": task,
        "source": source or f"domains/heating/raw/manual.md#h=Section {i}",
        "block_id": f"b{i}",
        "messages": messages,
        "meta": {},
    }


def upsampled(record, k):
    return {**record, "id": f"{record['id']}~{k}"}


def clean_splits():
    """10 unique train examples (spec 6, qa 4 plus 2 up-sampled copies) and 2 val: val share 2/12, task ratio 1."""
    spec = [example(i, "spec") for i in range(6)]
    qa = [example(i, "qa") for i in range(6, 10)]
    train = spec + qa + [upsampled(qa[0], 2), upsampled(qa[1], 2)]
    val = [example(20, "spec"), example(21, "qa")]
    return train, val


def write_case(root, train, val, max_seq_len=64, on_overlong="fail", max_answer_chars=600):
    root.mkdir(parents=True, exist_ok=True)
    params = {
        "generate": {"tasks": ["spec", "qa"]},
        "model": {"max_seq_len": max_seq_len},
        "balance": {"max_ratio": 2.0},
        "split": {"val_fraction": 0.15},
        "validate": {"val_fraction_tolerance": 0.05, "max_answer_chars": max_answer_chars, "on_overlong": on_overlong},
    }
    params_file(root / "params.yaml", params)
    for name, records in (("train", train), ("val", val)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def invoke(root, model):
    args = ["--train", root / "train.jsonl", "--val", root / "val.jsonl", "--model", model]
    args += ["--train-out", root / "out" / "train.jsonl", "--val-out", root / "out" / "val.jsonl"]
    args += ["--metrics", root / "metrics.json", "--docs", root / "docs", "--params", root / "params.yaml"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    metrics = json.loads((root / "metrics.json").read_text()) if (root / "metrics.json").exists() else None
    return result, metrics


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, model):
    root = write_case(tmp_path_factory.mktemp("clean"), *clean_splits())
    return root, *invoke(root, model)


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory, model):
    train, val = clean_splits()
    train[1]["messages"] = [train[1]["messages"][0], train[1]["messages"][2], train[1]["messages"][1]]  # role order
    train[2]["messages"][2]["content"] = "   "  # empty assistant turn
    train[3]["task"] = "poetry"  # unknown task
    train[4]["messages"][2]["content"] = "The CA-24C draws 2.4 kW. " * 40  # too long for max_seq_len 64
    train.append({**train[5], "question": "x"})  # duplicate id (and pair)
    train[7]["messages"][2]["content"] = "Eat a banana! " * 30  # one phrase over and over
    train[8]["messages"][2]["content"] = (
        "The fan runs. The pump runs, then the burner fires and heats. " * 2 + "x" * 500
    )
    train += [example(30 + i, "spec") for i in range(12)]  # spec 18+ vs qa 6: ratio > 2; val 2 of 23 sources
    val[0]["source"] = train[0]["source"]  # source in both splits
    val[1]["messages"] = [dict(m) for m in train[6]["messages"]]  # same prompt as a train example
    root = write_case(tmp_path_factory.mktemp("broken"), train, val)
    # A stray file from an earlier build must disappear: the docs directory is replaced whole.
    (root / "docs").mkdir()
    (root / "docs" / "stale.html").write_text("old")
    return root, *invoke(root, model)


def test_clean_data_passes_and_writes_every_expectation(clean_run):
    _, result, metrics = clean_run
    assert result.exit_code == 0, result.output
    assert metrics["success"] is True
    assert (metrics["n_train"], metrics["n_val"]) == (12, 2)
    assert list(metrics["expectations"]) == EXPECTATIONS
    assert all(e["success"] and e["unexpected_count"] == 0 for e in metrics["expectations"].values())
    assert metrics["expectations"]["val_share"]["observed"] == pytest.approx(2 / 12, abs=1e-4)  # 2 of 12 sources
    assert metrics["expectations"]["train_task_ratio"]["observed"] == 1.0
    assert "[validate]" in result.stderr


def test_data_docs_are_built(clean_run, broken_run):
    for root, _, _ in (clean_run, broken_run):
        assert (root / "docs" / "index.html").is_file()
        assert list((root / "docs" / "validations").rglob("*.html"))
    assert not (broken_run[0] / "docs" / "stale.html").exists()


def test_metrics_are_deterministic(clean_run, tmp_path, model):
    root = write_case(tmp_path, *clean_splits())
    invoke(root, model)
    assert (root / "metrics.json").read_text() == (clean_run[0] / "metrics.json").read_text()


@pytest.mark.parametrize(
    "name, words",
    [
        ("train_well_formed", "roles must alternate"),
        ("train_well_formed", "has empty content"),
        ("train_task_known", "'poetry'"),
        ("train_fits_max_seq_len", "model.max_seq_len is 64"),
        ("train_unique_ids", "train.jsonl:6: id=ex5"),
        ("train_unique_prompt_answer", "an exact duplicate: another example has the same prompt and answer"),
        (
            "train_answer_not_repeated",
            "train.jsonl:8: id=ex7 source=domains/heating/raw/manual.md#h=Section 7: the answer is one phrase repeated 30",
        ),
        (
            "train_answer_max_chars",
            "Section 8: the answer has 624 characters, validate.max_answer_chars is 600",
        ),
        ("train_fits_max_seq_len", "set validate.on_overlong: drop to leave them out"),
        ("val_source_not_in_train", "source is also in train"),
        ("val_prompt_not_in_train", "prompt also occurs in train"),
        ("train_task_ratio", "'spec' has 18 examples"),
        ("train_task_ratio", "made by balance: raise balance.max_upsample or balance.max_ratio"),  # stage, params
        ("val_share", "expected 15% ± 5%"),
        ("val_share", "(split.val_fraction; balance caps val per task: see metrics/balance/<domain>.json)"),
    ],
)
def test_each_breakage_fails_its_expectation(broken_run, name, words):
    _, result, metrics = broken_run
    assert result.exit_code != 0
    assert metrics["success"] is False
    assert metrics["expectations"][name]["success"] is False
    assert f"FAILED {name}:" in result.stderr
    section = result.stderr.split(f"FAILED {name}:", 1)[1].split("FAILED", 1)[0]
    assert words in section


def test_broken_run_keeps_checking_and_passes_what_is_fine(broken_run):
    _, result, metrics = broken_run
    assert list(metrics["expectations"]) == EXPECTATIONS
    for name in ("train_required_columns", "val_well_formed", "val_task_known", "val_unique_ids"):
        assert metrics["expectations"][name]["success"] is True, name
    assert metrics["expectations"]["train_fits_max_seq_len"]["observed"] > 64
    assert "validation failed" in result.stderr


def test_missing_column_and_odd_types_are_reported_not_crashed_on(tmp_path, model):
    train, val = clean_splits()
    train[0]["source"] = ["not", "a", "string"]
    train[1]["messages"] = "not a list"
    train[2]["task"] = None
    for record in val:
        del record["source"]
    result, metrics = invoke(write_case(tmp_path, train, val), model)
    assert result.exit_code == 1
    expectations = metrics["expectations"]
    assert expectations["val_required_columns"] == {"success": False, "unexpected_count": 1, "missing": ["source"]}
    assert "missing columns: source" in result.stderr
    assert expectations["train_well_formed"]["unexpected_count"] == 3
    assert "`messages` must be a non-empty list" in result.stderr


def test_derived_columns():
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "[SPEC] Q"},
        {"role": "assistant", "content": "A"},
    ]
    assert render_prompt(messages) == "system: S\nuser: [SPEC] Q"
    assert answer_of(messages) == "A"
    assert answer_of(messages[:2]) == ""
    assert [copy_number(i) for i in ("abc", "abc~2", "abc~x", None)] == [0, 2, 1, 0]


def test_val_share_counts_unique_train_examples_only():
    import pandas as pd

    train = pd.DataFrame({"copy": [0] * 8 + [2] * 8})
    val = pd.DataFrame({"copy": [0] * 2})
    assert split_share(train, val)["val_share"].iloc[0] == 0.2


def read_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_passing_run_writes_the_checked_examples_for_training(clean_run):
    root, _, metrics = clean_run
    train, val = clean_splits()
    assert read_records(root / "out" / "train.jsonl") == train
    assert read_records(root / "out" / "val.jsonl") == val
    assert metrics["overlong"] == {"on_overlong": "fail", "n_dropped": 0, "dropped": []}


def test_a_failing_run_writes_nothing_for_training(broken_run):
    root, _, metrics = broken_run
    assert metrics["success"] is False
    assert not (root / "out").exists()


def overlong_case(root, on_overlong):
    """The clean splits plus two train examples (an original and its up-sampled copy) and one val example over
    max_seq_len 64, each from a source of its own."""
    train, val = clean_splits()
    long = "The CA-24C draws 2.4 kW at full load, 0.8 kW in standby, and needs a 16 A fuse. "
    extra = example(40, "qa", answer=long * 3, source="domains/heating/raw/qa.jsonl#line=40")
    train[3:3] = [extra, upsampled(extra, 2)]
    val.append(example(41, "spec", answer=long * 4, source="domains/heating/raw/qa.jsonl#line=41"))
    return write_case(root, train, val, on_overlong=on_overlong)


def test_on_overlong_drop_leaves_them_out_counts_and_lists_them(tmp_path, model):
    root = overlong_case(tmp_path, "drop")
    result, metrics = invoke(root, model)
    assert result.exit_code == 0, result.output
    train, val = clean_splits()
    assert read_records(root / "out" / "train.jsonl") == train  # what is left is exactly the clean split
    assert read_records(root / "out" / "val.jsonl") == val
    assert (metrics["n_train"], metrics["n_val"]) == (12, 2)
    overlong = metrics["overlong"]
    assert overlong["on_overlong"] == "drop" and overlong["n_dropped"] == 3
    assert [(d["split"], d["line"], d["id"], d["source"]) for d in overlong["dropped"]] == [
        ("train", 4, "ex40", "domains/heating/raw/qa.jsonl#line=40"),
        ("train", 5, "ex40~2", "domains/heating/raw/qa.jsonl#line=40"),
        ("val", 3, "ex41", "domains/heating/raw/qa.jsonl#line=41"),
    ]
    assert all(d["n_tokens"] > 64 for d in overlong["dropped"])
    # The checks judged what trains: nothing over the limit is left, and the val share is of the kept sources.
    assert metrics["expectations"]["train_fits_max_seq_len"]["observed"] <= 64
    assert metrics["expectations"]["val_share"]["observed"] == pytest.approx(2 / 12, abs=1e-4)
    assert "left out 3 examples over model.max_seq_len 64 tokens (validate.on_overlong: drop)" in result.stderr


def test_on_overlong_fail_stops_and_names_the_knob(tmp_path, model):
    result, metrics = invoke(overlong_case(tmp_path, "fail"), model)
    assert result.exit_code == 1
    assert metrics["overlong"]["n_dropped"] == 0
    assert metrics["expectations"]["train_fits_max_seq_len"]["unexpected_count"] == 2
    assert metrics["expectations"]["val_fits_max_seq_len"]["unexpected_count"] == 1
    section = result.stderr.split("FAILED val_fits_max_seq_len:", 1)[1]
    assert "val.jsonl:3: id=ex41" in section
    assert "set validate.on_overlong: drop to leave them out" in section


def test_on_overlong_takes_fail_or_drop_only(tmp_path, model):
    result, _ = invoke(overlong_case(tmp_path, "truncate"), model)
    assert result.exit_code == 1
    assert "validate.on_overlong: input should be 'fail' or 'drop' (got 'truncate')" in str(result.exception)


def test_every_check_says_which_stage_made_a_failure_and_which_param_changes_it():
    import re

    from finetune.validation.expectations import checks
    from tests.conftest import repo_params

    params = repo_params()

    def is_key(dotted: str) -> bool:
        node = params
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    for c in checks(["spec", "qa"], 64, 2.0, 0.15, 0.05):
        assert re.search(r"\bmade by (extract|generate|balance)\b", c.hint), c.name
        keys = [k for k in re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", c.hint) if is_key(k)]
        # Where no param causes it (ids, missing fields, a repeated phrase), the hint says so instead of naming one.
        assert keys or "no param" in c.hint, c.name


def quality_case(root, on_exceed, **counts):
    """The clean splits, with generate's quality counts of 200 examples (every problem 0 unless given)."""
    from finetune.generation.quality import PROBLEMS

    write_case(root, *clean_splits())
    params_file(root / "params.yaml", {
        "generate": {"tasks": ["spec", "qa"]}, "model": {"max_seq_len": 64}, "balance": {"max_ratio": 2.0},
        "split": {"val_fraction": 0.15},
        "validate": {"val_fraction_tolerance": 0.05, "quality": {"on_exceed": on_exceed}},
    })  # fmt: skip
    quality = {"examples": 200, **{p: 0 for p in PROBLEMS}, **{f"{p}_of": 200 for p in PROBLEMS}, **counts}
    (root / "quality.json").write_text(json.dumps(quality))
    return root


def invoke_quality(root, model):
    args = ["--train", root / "train.jsonl", "--val", root / "val.jsonl", "--model", model]
    args += ["--train-out", root / "out" / "train.jsonl", "--val-out", root / "out" / "val.jsonl"]
    args += ["--metrics", root / "metrics.json", "--docs", root / "docs", "--params", root / "params.yaml"]
    args += ["--quality", root / "quality.json"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result, json.loads((root / "metrics.json").read_text())


def test_quality_shares_over_their_threshold_warn_one_line_each_and_pass(tmp_path, model):
    # dangling_lead_in 5 of 200 = 2.5% > 2%; bare_code 10 of 200 = 5% is at its 5%, not over.
    result, metrics = invoke_quality(quality_case(tmp_path, "warn", dangling_lead_in=5, bare_code=10), model)
    assert result.exit_code == 0, result.output
    assert metrics["success"] is True and metrics["warnings"] == 1
    entry = metrics["expectations"]["quality_dangling_lead_in"]
    assert entry == {
        "success": False, "unexpected_count": 1, "observed": 0.025, "count": 5, "max_value": 0.02,
        "severity": "warning",
    }  # fmt: skip
    assert metrics["expectations"]["quality_bare_code"]["success"] is True
    warned = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert warned == [
        "[validate] warning: dangling_lead_in: 5 of 200 examples (2.5%), over validate.quality.max_share."
        "dangling_lead_in 0.02"
    ]
    assert "(1 quality warning)" in result.stderr
    assert (tmp_path / "out" / "train.jsonl").exists()
    # Each threshold is a real expectation: it is in the Data Docs too.
    docs = "".join(p.read_text(errors="replace") for p in (tmp_path / "docs").rglob("*.html"))
    assert "quality_dangling_lead_in" in docs


def test_quality_on_exceed_fail_stops_validate_naming_problem_share_and_knob(tmp_path, model):
    result, metrics = invoke_quality(quality_case(tmp_path, "fail", ambiguous=1), model)
    assert result.exit_code == 1
    assert metrics["success"] is False and metrics["warnings"] == 0
    assert "severity" not in metrics["expectations"]["quality_ambiguous"]
    assert "ambiguous: 1 of 200 examples (0.5%), over validate.quality.max_share.ambiguous 0.0" in result.stderr
    assert "finetune show examples --domain D --problem ambiguous" in result.stderr
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_a_domain_overrides_one_quality_threshold_and_keeps_the_others(tmp_path):
    from finetune.params import load_params
    from tests.conftest import repo_params, write_params

    domain = write_params(tmp_path / "domain.yaml", {"validate": {"quality": {"max_share": {"bare_code": 0.1}}}})
    shares = load_params([write_params(tmp_path / "params.yaml", repo_params()), domain]).validate_.quality.max_share
    assert shares.bare_code == 0.1
    assert shares.dangling_lead_in == repo_params()["validate"]["quality"]["max_share"]["dangling_lead_in"]


def test_every_quality_problem_has_a_threshold_and_a_misspelt_one_is_named():
    from finetune.generation.quality import PROBLEMS
    from finetune.io import InputError
    from finetune.params import QualityShares, parse
    from tests.conftest import merge, repo_params

    assert list(QualityShares.model_fields) == list(PROBLEMS)
    assert list(repo_params()["validate"]["quality"]["max_share"]) == list(PROBLEMS)
    with pytest.raises(InputError, match=r"validate\.quality\.max_share\.dangling is not a key .*did you mean"):
        parse(merge(repo_params(), {"validate": {"quality": {"max_share": {"dangling": 0.1}}}}))
