"""Several adapters side by side: the interference check (each adapter on the other domains' questions, beside the
base), the combined table, staged training (an adapter that goes on from another) and the one `vllm serve` command
that serves them all."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from finetune.evaluation.compare import HEADLINE_KEYS, headline, markdown, table
from finetune.evaluation.interference import draw, summarise
from finetune.io import write_jsonl
from finetune.params import Compare
from finetune.vllm_serve import max_lora_rank, serve_command
from tests.conftest import assert_ok, invoke, repo_params, write_params


def example(i: int, task: str, answer: str) -> dict:
    messages = [{"role": "system", "content": "Other domain."}, {"role": "user", "content": f"q{i}?"}]
    return {"id": f"{task}{i:03d}", "task": task, "messages": [*messages, {"role": "assistant", "content": answer}]}


def val_set(n: int) -> list[dict]:
    return [example(i, "SPEC", f"answer number {i}") for i in range(n)] + [
        example(i, "REFUSAL", "No.") for i in range(n)
    ]


def test_draw_takes_a_seeded_sample_of_every_other_domain_and_none_of_its_own():
    sets = {"a": val_set(20), "b": val_set(20), "c": val_set(3)}
    params = Compare(examples_per_domain=5, refusals_per_domain=2, seed=1)
    drawn = draw(sets, "a", params)
    assert list(drawn) == ["b", "c"]
    assert len(drawn["b"]["answers"]) == 5 and len(drawn["b"]["refusals"]) == 2
    assert len(drawn["c"]["answers"]) == 3  # all it has
    assert all(e["task"] == "REFUSAL" for e in drawn["b"]["refusals"])
    # The draw depends on the val set, not on its order in the file.
    shuffled = {**sets, "b": list(reversed(sets["b"]))}
    assert draw(shuffled, "a", params) == drawn


def test_summarise_scores_the_adapter_against_the_base_and_counts_its_refusals():
    drawn = {"b": {"answers": [example(0, "SPEC", "red wire"), example(1, "SPEC", "blue wire")],
                   "refusals": [example(2, "REFUSAL", "No.")]}}  # fmt: skip
    base = ["red wire", "blue wire", "sure, here is a poem"]
    tuned = ["I only help with ovens.", "blue wire", "I only help with ovens."]
    r = summarise(drawn, base, tuned, "I only help with ovens.")["b"]
    assert r["rouge_l_base"] == 1.0 and r["rouge_l"] == 0.5 and r["rouge_l_delta"] == -0.5
    assert r["refuses_in_domain"] == 0.5 and r["refuses_off_topic"] == 1.0
    assert (r["examples"], r["refusal_questions"]) == (2, 1)


def two_domains(tmp_path, trained) -> Path:
    """The shared run's params with two domains, own and other."""
    data = yaml.safe_load(Path(trained.params_file).read_text())
    data["domains"] = {"own": {"init_from": "base"}, "other": {"init_from": "base"}}
    return write_params(tmp_path / "params.yaml", data)


def test_the_interference_stage_answers_other_domains_with_the_adapter_and_with_the_base(tmp_path, trained):
    from stages.interference import cli

    for domain in ("own", "other", "removed"):  # a removed domain's val set stays on disk, unread
        write_jsonl(tmp_path / "val" / domain / "val.jsonl", trained.val)
    out = tmp_path / "interference.json"
    args = ["--domain", "own", "--model", trained.base, "--adapter", trained.adapter, "--val-dir", tmp_path / "val"]
    result = invoke(cli, [*args, "--output", out, "--params", two_domains(tmp_path, trained)])
    assert_ok(result)
    written = json.loads(out.read_text())
    assert written["adapter"] == "own" and list(written["on"]) == ["other"]
    other = written["on"]["other"]
    refusals = sum(e["task"] == "REFUSAL" for e in trained.val)
    assert other["refusal_questions"] == refusals and other["examples"] == len(trained.val) - refusals
    assert 0 <= other["rouge_l"] <= 1 and 0 <= other["rouge_l_base"] <= 1


def test_the_interference_stage_needs_every_domains_val_set(tmp_path, trained):
    from stages.interference import cli

    write_jsonl(tmp_path / "val" / "other" / "val.jsonl", trained.val)
    args = ["--domain", "own", "--adapter", trained.adapter, "--val-dir", tmp_path / "val", "--output", tmp_path / "o"]
    result = invoke(cli, [*args, "--params", two_domains(tmp_path, trained)])
    expected = f"{tmp_path / 'val' / 'own' / 'val.jsonl'}: no val set: run validate for own first"
    assert result.exit_code == 1 and str(result.exception) == expected


def eval_result(base: float, tuned: float) -> dict:
    def side(v):
        return {"overall": {"n": 4, "rouge_l": v, "exact_match": v / 2}, "SPEC": {"n": 4, "rouge_l": v}}

    return {"baseline": side(base), "finetuned": side(tuned)}


def test_compare_puts_every_adapter_and_task_side_by_side_under_readable_keys(tmp_path):
    from stages.compare import cli

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "a.json").write_text(json.dumps(eval_result(0.1, 0.4)))
    (tmp_path / "eval" / "b.json").write_text(json.dumps(eval_result(0.2, 0.3)))
    on = {"b": {"examples": 8, "rouge_l_base": 0.2, "rouge_l": 0.1, "rouge_l_delta": -0.1,
                "refuses_in_domain": 0.5, "refusal_questions": 4, "refuses_off_topic": 1.0}}  # fmt: skip
    (tmp_path / "interference").mkdir()
    (tmp_path / "interference" / "a.json").write_text(json.dumps({"adapter": "a", "on": on}))
    (tmp_path / "interference" / "b.json").write_text(json.dumps({"adapter": "b", "on": {}}))
    (tmp_path / "eval" / "removed.json").write_text("{}")  # a removed domain's metrics stay on disk, unread
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({**repo_params(), "domains": {"a": {"init_from": "base"}, "b": {"init_from": "a"}}})
    )
    args = ["--eval-dir", tmp_path / "eval", "--interference-dir", tmp_path / "interference", "--params", params]
    outs = ["--metrics", tmp_path / "compare.json", "--headline", tmp_path / "headline.json"]
    result = invoke(cli, [*args, *outs, "--report", tmp_path / "compare.md"])
    assert_ok(result)
    compared = json.loads((tmp_path / "compare.json").read_text())
    # The headline, DVC's only metrics file, holds a few numbers of each domain and none of the per-task detail.
    shown = json.loads((tmp_path / "headline.json").read_text())
    assert shown["a.rouge_l"] == 0.4 and shown["b.rouge_l_base"] == 0.2
    assert not any(".SPEC" in key or ".on." in key for key in shown)
    assert compared["a"]["rouge_l"] == 0.4 and compared["a"]["rouge_l_base"] == 0.1
    assert compared["b"]["SPEC"] == {"n": 4, "rouge_l": 0.3, "rouge_l_base": 0.2}
    assert compared["a"]["rouge_l_tasks"] == 0.4 and compared["a"]["rouge_l_tasks_base"] == 0.1  # SPEC alone
    assert compared["a"]["on"]["b"]["rouge_l_delta"] == -0.1 and compared["b"]["on"] == {}
    page = (tmp_path / "compare.md").read_text()
    assert "| a | SPEC | 4 | 0.100 | 0.400 | 0.300 |" in page
    assert "| a | b | 8 | 0.200 | 0.100 | -0.100 | 50% | 100% of 4 |" in page


def test_compare_without_a_domains_evaluate_results_is_one_line(tmp_path):
    from stages.compare import cli

    (tmp_path / "eval").mkdir()
    result = invoke(cli, ["--eval-dir", tmp_path / "eval", "--interference-dir", tmp_path / "none"])
    expected = (
        f"{tmp_path / 'eval' / 'heating.json'}: not found: the results of evaluate@heating (run `dvc repro` first)"
    )
    assert result.exit_code == 1 and str(result.exception) == expected


def test_table_and_page_read_the_same_numbers():
    compared = table({"a": eval_result(0.25, 0.5)}, {})
    assert "| **a** | all | | 0.250 | 0.500 | 0.250 |" in markdown(compared)


@pytest.mark.parametrize("ranks, rank", [([4], 8), ([16, 8], 16), ([17], 32), ([64, 16], 64), ([512], 512)])
def test_the_vllm_rank_holds_the_largest_adapter(ranks, rank):
    assert max_lora_rank(ranks) == rank


def adapter_dir(root: Path, name: str, r: int) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": r, "rank_pattern": {}}))
    return path


def test_one_vllm_command_serves_every_adapter_by_its_name(tmp_path):
    adapters = {"heating": adapter_dir(tmp_path, "heating", 16), "cli_tool": adapter_dir(tmp_path, "cli_tool", 64)}
    args = shlex.split(serve_command("models/base", adapters, port=8000))
    assert args[:4] == ["vllm", "serve", "models/base", "--enable-lora"]
    assert args[args.index("--max-lora-rank") + 1] == "64" and args[args.index("--max-loras") + 1] == "2"
    modules = args[args.index("--lora-modules") + 1 : args.index("--port")]
    assert modules == [f"heating={tmp_path / 'heating'}", f"cli_tool={tmp_path / 'cli_tool'}"]


def test_finetune_export_vllm_prints_the_command_for_the_domains_of_params_yaml(tmp_path, monkeypatch, small_params):
    from finetune.commands.export import cli
    from tests.conftest import write_params

    monkeypatch.chdir(tmp_path)
    small_params["domains"] = {"a": {"init_from": "base"}, "b": {"init_from": "a"}}
    write_params(tmp_path / "params.yaml", small_params)
    adapter_dir(tmp_path / "models", "a", 8)
    result = invoke(cli, ["--vllm"])
    assert result.exit_code == 1 and "models/b: no adapter here" in str(result.exception)
    adapter_dir(tmp_path / "models", "b", 32)
    result = invoke(cli, ["--vllm", "--port", "8000"])
    assert_ok(result)
    assert result.stdout.strip() == (
        "vllm serve models/base --enable-lora --max-lora-rank 32 --max-loras 2 --lora-modules a=models/a b=models/b "
        "--port 8000"
    )


def test_staged_training_goes_on_from_the_earlier_adapter(tmp_path, trained):
    """The second stage starts from the first stage's weights (and keeps its LoRA shape), not from a new adapter."""
    from safetensors.torch import load_file

    from stages.train import cli

    out = tmp_path / "second"
    args = ["--train", trained.splits.train, "--val", trained.splits.val, "--model", trained.base]
    args += ["--init-from", trained.adapter, "--output", out, "--checkpoints", tmp_path / "ckpt"]
    args += ["--metrics", tmp_path / "m.json", "--live-dir", tmp_path / "live", "--params", trained.params_file]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        result = invoke(cli, args)
    assert_ok(result)
    assert f"going on training the adapter {trained.adapter}" in result.stderr
    first, second = (load_file(Path(p) / "adapter_model.safetensors") for p in (trained.adapter, out))
    assert first.keys() == second.keys()
    # lora_B starts at zero in a new adapter; the first stage's non-zero B goes on changing from where it was.
    b = next(k for k in first if "lora_B" in k)
    assert first[b].abs().sum() > 0 and not (second[b] == first[b]).all()
    assert (
        json.loads((out / "adapter_config.json").read_text())["r"]
        == json.loads((trained.adapter / "adapter_config.json").read_text())["r"]
    )


def test_init_from_something_that_is_not_an_adapter_is_one_line(tmp_path, trained):
    from stages.train import cli

    args = ["--train", trained.splits.train, "--val", trained.splits.val, "--model", trained.base]
    args += ["--init-from", tmp_path, "--output", tmp_path / "x", "--checkpoints", tmp_path / "c"]
    args += ["--metrics", tmp_path / "m.json", "--live-dir", tmp_path / "live", "--params", trained.params_file]
    result = invoke(cli, args)
    assert result.exit_code == 1 and "no adapter here (adapter_config.json); train that domain first" in str(
        result.exception
    )


def test_init_from_the_base_itself_trains_a_new_adapter(tmp_path, trained):
    # dvc.yaml passes models/base as init_from for a domain that starts afresh.
    from stages.train import cli

    args = ["--train", trained.splits.train, "--val", trained.splits.val, "--model", trained.base]
    args += ["--init-from", trained.base, "--output", tmp_path / "x", "--checkpoints", tmp_path / "c"]
    args += ["--metrics", tmp_path / "m.json", "--live-dir", tmp_path / "live", "--params", trained.params_file]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        result = invoke(cli, args)
    assert_ok(result)
    assert "going on training" not in result.stderr


def test_the_mean_of_tasks_counts_each_task_once_and_leaves_refusals_out():
    def side(spec, qa, refusal):
        return {"overall": {"n": 40, "rouge_l": 0.9}, "SPEC": {"n": 2, "rouge_l": spec}, "QA": {"n": 3, "rouge_l": qa},
                "REFUSAL": {"n": 35, "rouge_l": refusal}}  # fmt: skip

    row = table({"a": {"baseline": side(0.0, 0.2, 0.0), "finetuned": side(0.5, 0.3, 1.0)}}, {})["a"]
    assert row["rouge_l_tasks"] == pytest.approx(0.4) and row["rouge_l_tasks_base"] == pytest.approx(0.1)


def test_the_headline_is_a_few_flat_keys_one_number_of_every_domain_at_a_time():
    rows = {
        "b": {"rouge_l": 0.3, "rouge_l_base": 0.2, "refusal_accuracy": 1.0, "SPEC": {"n": 4, "rouge_l": 0.3}},
        "a": {"rouge_l": 0.4, "rouge_l_base": 0.1, "questions": {"rouge_l": 0.5, "rouge_l_base": 0.25}},
    }
    shown = headline(rows)
    # Column order of `dvc exp show`: every domain's first headline number, then every domain's second, so the
    # columns a 120-column terminal shows first hold one number of every domain. A key a domain lacks is left out,
    # for that domain alone (b has no questions), and one no domain has gives no column (the judge's rate here).
    assert list(shown) == [
        "a.questions.rouge_l",
        "a.questions.rouge_l_base",
        "b.rouge_l",
        "a.rouge_l",
        "b.rouge_l_base",
        "a.rouge_l_base",
        "b.refusal_accuracy",
    ]
    assert shown["a.questions.rouge_l"] == 0.5 and shown["b.refusal_accuracy"] == 1.0
    # The picked keys are the same for every domain, read from one list, never from a domain's name.
    assert {key.split(".", 1)[1] for key in shown} <= set(HEADLINE_KEYS)


def test_a_questions_key_written_flat_counts_as_its_nested_form():
    # A row may hold the questions' scores nested ({"questions": {"rouge_l": …}}) or as a flat dotted key: the
    # headline and `dvc exp show` name both `<domain>.questions.rouge_l`.
    assert headline({"a": {"questions.judge_rate": 0.75}}) == {"a.questions.judge_rate": 0.75}
