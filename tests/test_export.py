"""`finetune export` on the tiny trained adapter, the merged model served by a real `transformers serve` process
(offline, from the local directory), and `finetune evaluate --endpoint` against it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from stages.baseline import cli as baseline_cli
from stages.evaluate import cli as evaluate_cli
from finetune.commands.export import cli as export_cli
from finetune.io import load_jsonl
from tests.conftest import HEATING_TASKS, assert_ok, invoke, typed, write_params
from tests.serving import free_port, transformers_serve


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained):
    root = tmp_path_factory.mktemp("export")
    merged = root / "models" / "merged"
    merged.mkdir(parents=True)
    (merged / "stale.bin").write_bytes(b"from an earlier export")  # export replaces the folder whole
    args = ["--model", trained.base, "--adapter", trained.adapter, "--output", merged, "--params", trained.params_file]
    assert_ok(invoke(export_cli, args))
    return SimpleNamespace(root=root, merged=merged, trained=trained)


@pytest.fixture(scope="module")
def served(exported):
    """The merged model behind `transformers serve`, evaluated once over the endpoint."""
    root, trained = exported.root, exported.trained
    params = yaml.safe_load(trained.params_file.read_text())
    params["eval"].update(concurrency=4, timeout_s=30, max_retries=2, backoff_s=0.05)
    params_file = write_params(root / "params.yaml", params)
    out = SimpleNamespace(
        root=root,
        name=str(exported.merged),  # `transformers serve DIR` answers to exactly this model name
        params=params,
        params_file=params_file,
        cache=root / "data/eval/endpoint_cache",
        base_predictions=root / "data/eval/heating/baseline_predictions.jsonl",
        base_scores=root / "data/eval/heating/baseline_scores.json",
        val=trained.val,
    )
    common = ["--val", trained.splits.val, "--params", params_file, "--tasks", HEATING_TASKS]
    base_args = ["--model", trained.base, "--predictions", out.base_predictions, "--scores", out.base_scores]
    base_args += ["--timing", root / "metrics/timing/baseline/heating.json"]
    assert_ok(invoke(baseline_cli, [*base_args, *common]))

    def evaluate(url: str, tag: str):
        args = ["--endpoint", url, "--model", out.name, "--cache", out.cache, *common]
        args += ["--baseline-predictions", out.base_predictions, "--baseline-scores", out.base_scores]
        args += ["--predictions", root / f"{tag}/predictions.jsonl", "--metrics", root / f"{tag}/eval.json"]
        args += ["--report", root / f"{tag}/eval.md", "--plot", root / f"{tag}/eval_tasks.csv"]
        return invoke(evaluate_cli, args)

    out.evaluate = evaluate
    with transformers_serve(exported.merged, root / "serve.log") as url:
        out.url = url
        out.first = evaluate(url, "first")
    return out


def test_export_saves_safetensors_and_the_tokenizer_and_replaces_the_folder(exported):
    names = {p.name for p in exported.merged.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "stale.bin" not in names and "adapter_config.json" not in names  # a plain model, not an adapter
    assert "chat_template.jinja" in names or "chat_template" in (exported.merged / "tokenizer_config.json").read_text()


def test_exported_model_is_the_base_with_the_adapter_merged(exported, small_params):
    import torch

    from finetune.training.models import load_base, load_merged, load_tokenizer

    trained = exported.trained
    ids = load_tokenizer(exported.merged)("[SPEC] CA-24C: rated output?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        merged = load_base(exported.merged, typed(small_params).model)(ids).logits
        reference = load_merged(trained.base, trained.adapter, typed(small_params).model)(ids).logits
    torch.testing.assert_close(merged, reference)


def test_evaluate_endpoint_writes_baseline_finetuned_and_delta_per_task(served):
    assert_ok(served.first)
    result = json.loads((served.root / "first/eval.json").read_text())
    tasks = {"overall"} | {e["task"] for e in served.val}
    assert set(result) == {"baseline", "finetuned", "delta"}
    assert set(result["finetuned"]) == set(result["delta"]) == tasks
    assert result["baseline"] == json.loads(served.base_scores.read_text())
    overall = result["finetuned"]["overall"]
    assert overall["n"] == len(served.val) and overall["latency_p50_ms"] > 0 and overall["tokens_per_second"] > 0
    assert (served.root / "first/eval.md").is_file()


def test_served_answers_match_the_local_merged_model_s_greedy_answers(served, exported):
    """Same weights, same chat template, greedy: the same text. Generated one prompt at a time locally, as the
    server does (no batching), so left padding cannot shift a near-tie between two tokens."""
    from finetune.chat import prompt_messages
    from finetune.evaluation.inference import generate
    from finetune.training.models import load_base, load_tokenizer

    tokenizer = load_tokenizer(exported.merged)
    model = load_base(exported.merged, typed(served.params).model)
    max_new = served.params["eval"]["max_new_tokens"]
    local = generate(model, tokenizer, [prompt_messages(e) for e in served.val], 1, max_new, "local")
    remote = load_jsonl(served.root / "first/predictions.jsonl")
    pairs = [(a["prediction"], b["prediction"]) for a, b in zip(local, remote, strict=True)]
    assert [p for p in pairs if p[0] != p[1]] == []


def test_a_second_run_takes_every_answer_from_the_cache(served):
    """Rerun against a port nothing listens on, with no retries: it can only pass if it asks nothing."""
    before = {p.name: p.stat().st_mtime_ns for p in served.cache.iterdir()}
    assert len(before) == len({json.dumps(e["messages"][:-1]) for e in served.val})
    result = served.evaluate(f"http://127.0.0.1:{free_port()}/v1", "second")
    assert_ok(result)
    assert "0 to ask" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in served.cache.iterdir()} == before
    first = json.loads((served.root / "first/eval.json").read_text())
    assert json.loads((served.root / "second/eval.json").read_text()) == first  # latencies included: cached too
