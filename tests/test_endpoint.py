"""stages/endpoint.py against a fault-injecting server on 127.0.0.1, and `finetune evaluate --endpoint` against it:
transient faults retried with backoff, permanent ones one clear error, the cache resuming what a failure left, the
API key sent but never written."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from finetune.io import InputError, load_jsonl, write_json, write_jsonl
from finetune.serving.endpoint import Client, EndpointError, Refusal, cache_key, chat_body
from stages.evaluate import cli as evaluate_cli
from tests.conftest import HEATING_TASKS, assert_ok, invoke, write_params
from tests.serving import FaultServer, free_port

MODEL = "served-model"


def client(url: str, cache_dir: Path | None = None, **kw) -> Client:
    # Backoff and timeout tiny: the faults are real, the waiting need not be.
    opts = {"concurrency": 4, "timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01, "cache_dir": cache_dir}
    return Client(url, **{**opts, **kw})


def body(prompt: str, **sampling) -> dict:
    return chat_body(MODEL, [{"role": "user", "content": prompt}], temperature=0, max_tokens=8, **sampling)


@pytest.mark.parametrize("fault", ["429", "500", "slow", "malformed", "reset"])
def test_a_transient_fault_is_retried_and_the_request_succeeds(fault, tmp_path):
    with FaultServer(slow_s=1.0) as server:
        server.faults["q"] = [fault, fault]
        answers = client(server.url, tmp_path, timeout_s=0.3).complete([body("q")], "test")
    assert answers[0].content == "answer to q" and not answers[0].cached
    assert server.counts["q"] == 3  # two faults, then the answer


def test_retries_back_off_exponentially(tmp_path):
    with FaultServer() as server:
        server.faults["q"] = ["500", "500", "500"]
        t0 = time.monotonic()
        client(server.url, max_retries=3, backoff_s=0.05).ask(body("q"))
        elapsed = time.monotonic() - t0
    assert server.counts["q"] == 4
    assert elapsed >= 0.05 + 0.10 + 0.20  # 1x, 2x, 4x backoff_s before the 2nd, 3rd and 4th try


def test_connection_refused_is_retried_until_the_server_comes_up(tmp_path):
    port = free_port()
    holder = {}

    def start():  # the server appears while the client is backing off
        holder["server"] = FaultServer(port=port).__enter__()

    timer = threading.Timer(0.3, start)
    timer.start()
    try:
        answer = client(f"http://127.0.0.1:{port}/v1", max_retries=6, backoff_s=0.1).ask(body("q"))
    finally:
        timer.join()
        holder["server"].__exit__(None, None, None)
    assert answer.content == "answer to q"
    assert holder["server"].counts["q"] == 1


def test_connection_refused_for_good_fails_with_one_line_naming_the_url_and_what_was_tried():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError) as e:
        client(url, max_retries=2).ask(body("q"))
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{url}/chat/completions: connection refused")
    assert "3 attempts" in message and "eval.max_retries" in message


def test_a_permanent_server_error_fails_after_max_retries_with_the_status_and_url():
    with FaultServer() as server:
        server.faults["q"] = ["down"]
        with pytest.raises(EndpointError) as e:
            client(server.url, max_retries=3).ask(body("q"))
    assert server.counts["q"] == 4
    assert str(e.value).startswith(f"{server.url}/chat/completions: HTTP 500")
    assert "4 attempts" in str(e.value)


def test_a_rejected_key_fails_at_once_and_the_key_is_blanked_out_of_the_message(monkeypatch):
    monkeypatch.setenv("TEST_ENDPOINT_KEY", "sk-test-SECRET-42")
    with FaultServer() as server:
        server.faults["q"] = ["401"]
        with pytest.raises(EndpointError) as e:
            client(server.url, api_key_env="TEST_ENDPOINT_KEY").ask(body("q"))
    assert server.counts["q"] == 1  # a 4xx other than 429 is not retried
    assert server.authorization == ["Bearer sk-test-SECRET-42"]
    assert "HTTP 401" in str(e.value) and "$TEST_ENDPOINT_KEY" in str(e.value)
    assert "sk-test-SECRET-42" not in str(e.value) and "***" in str(e.value)


def test_no_key_in_the_environment_sends_no_authorization_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FaultServer() as server:
        client(server.url).ask(body("q"))
    assert server.authorization == [None]


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_request_refused_as_invalid_stops_a_caller_that_needs_every_answer_and_is_returned_to_one_that_does_not(
    tmp_path, status
):
    long = " ".join(["word"] * 10)
    with FaultServer(context=5, refuse_status=status) as server:
        with pytest.raises(EndpointError) as stop:
            client(server.url, tmp_path / "strict").complete([body(long)], "test")
        assert stop.value.status == status and server.counts[long] == 1  # never retried
        assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").iterdir())

        answers = client(server.url, tmp_path / "cache").complete([body("short"), body(long)], "test", refusals=True)
        assert answers[0].content == "answer to short"
        detail = "The prompt has 10 tokens, but the model takes at most 5."
        detail = "Request Entity Too Large" if status == 413 else detail
        assert answers[1] == Refusal(status, detail, cached=False)
        assert server.counts[long] == 2

        again = client(server.url, tmp_path / "cache").complete([body("short"), body(long)], "test", refusals=True)
        assert again[1] == Refusal(status, detail, cached=True) and server.counts[long] == 2
        # A caller that cannot take a refusal does not get a cached one: it asks, and stops on the server's answer.
        with pytest.raises(EndpointError):
            client(server.url, tmp_path / "cache").ask(body(long))
        assert server.counts[long] == 3


def test_a_rejected_key_stops_even_a_caller_that_takes_refusals(tmp_path):
    with FaultServer() as server:
        server.faults["q"] = ["401"]
        with pytest.raises(EndpointError) as stop:
            client(server.url, tmp_path).complete([body("q")], "test", refusals=True)
    assert stop.value.status == 401 and not list(tmp_path.iterdir())


def test_a_refusal_reads_the_prompt_size_and_limit_from_the_servers_words():
    hf = "The prompt has 1018 tokens, but the model takes at most 384, prompt and answer (`--max-model-len`)."
    assert Refusal(400, hf, True).size() == (1018, 384)
    vllm = "This model's maximum context length is 384 tokens. However, you requested 476 tokens (468 in the messages)"
    assert Refusal(400, vllm, True).size() == (476, 384)
    assert Refusal(413, "Request Entity Too Large", True).size() == (None, None)
    assert Refusal(400, "unsupported field: response_format", True).size() is None


def test_concurrency_is_bounded(tmp_path):
    with FaultServer(delay_s=0.1) as server:
        answers = client(server.url, concurrency=3).complete([body(f"q{i}") for i in range(9)], "test")
    assert [a.content for a in answers] == [f"answer to q{i}" for i in range(9)]  # in the order asked
    assert server.max_in_flight == 3


def test_identical_requests_are_asked_once():
    with FaultServer() as server:
        answers = client(server.url).complete([body("q"), body("p"), body("q")], "test")
    assert [a.content for a in answers] == ["answer to q", "answer to p", "answer to q"]
    assert server.counts == {"q": 1, "p": 1}


def test_cache_is_one_file_per_request_keyed_by_the_body_not_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    with FaultServer() as server:
        c = client(server.url, tmp_path / "cache")
        c.complete([body("q"), body("q", top_p=0.5)], "test")  # other sampling: another entry
        monkeypatch.setenv("OPENAI_API_KEY", "sk-second")  # another key: the same entries
        again = c.complete([body("q"), body("q", top_p=0.5)], "test")
    files = sorted((tmp_path / "cache").iterdir())
    assert [f.name for f in files] == sorted(f"{cache_key(b)}.json" for b in (body("q"), body("q", top_p=0.5)))
    assert server.counts["q"] == 2 and all(a.cached for a in again)
    entry = json.loads(files[0].read_text())
    assert set(entry) == {"request", "reply", "latency_ms"}
    assert not any(b"sk-" in f.read_bytes() for f in files)


def test_answers_before_a_permanent_failure_stay_cached_and_the_rerun_asks_only_for_the_rest(tmp_path):
    prompts = [f"q{i}" for i in range(8)]
    bodies = [body(p) for p in prompts]
    cache = tmp_path / "cache"
    with FaultServer() as server:
        server.faults["q3"] = ["down"]
        with pytest.raises(EndpointError):
            client(server.url, cache, concurrency=2).complete(bodies, "test")
        first = dict(server.counts)
        assert first["q3"] == 3  # 1 + max_retries
        cached_after_failure = len(list(cache.iterdir()))
        assert cached_after_failure == sum(1 for p in prompts if p != "q3" and first.get(p))

        server.faults.clear()  # the server recovers
        server.counts.clear()
        answers = client(server.url, cache, concurrency=2).complete(bodies, "test")
    assert [a.content for a in answers] == [f"answer to {p}" for p in prompts]
    # The rerun asked for q3 and for what the failure cancelled, nothing that was already answered.
    assert set(server.counts) == {p for p in prompts if p == "q3" or not first.get(p)}
    assert all(n == 1 for n in server.counts.values())
    assert len(list(cache.iterdir())) == len(prompts)


@pytest.mark.parametrize(
    "entry",
    [
        {"request": {}, "reply": {"choices": [{"message": {"content": "old"}}]}},  # no latency_ms
        {"request": {}, "reply": {"choices": [{"message": {"content": "old"}}]}, "latency_ms": "fast"},
        {"request": {}, "reply": [], "latency_ms": 3.0},
        ["not", "an", "entry"],
    ],
)
def test_an_unreadable_cache_entry_is_asked_again_and_overwritten(tmp_path, entry):
    cache = tmp_path / "cache"
    write_json(cache / f"{cache_key(body('q'))}.json", entry)
    with FaultServer() as server:
        answer = client(server.url, cache).complete([body("q")], "test")[0]
    assert (answer.content, answer.cached, server.counts["q"]) == ("answer to q", False, 1)
    assert json.loads((cache / f"{cache_key(body('q'))}.json").read_text())["reply"]["choices"][0]["message"] == {
        "role": "assistant",
        "content": "answer to q",
    }


def test_a_server_that_stays_down_is_an_endpoint_error_not_bad_input():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError) as e:
        client(url, max_retries=0).ask(body("q"))
    assert not isinstance(e.value, InputError)  # the data is fine; the server is not


# --- `finetune evaluate --endpoint` against the fault server ----------------------------------------------------


@pytest.fixture
def eval_inputs(tmp_path, tiny_splits, small_params):
    """Val, a params file with tiny backoff, and baseline outputs scored from canned answers (no model needed)."""
    from finetune.evaluation.metrics import score, scored_rows
    from finetune.generation.taskfile import load

    val = load_jsonl(tiny_splits.val)
    small_params["eval"].update(concurrency=3, timeout_s=2, max_retries=2, backoff_s=0.01)
    refusal = small_params["generate"]["refusal"]
    gens = [{"prediction": "no idea", "latency_ms": 5.0, "new_tokens": 2}] * len(val)
    rows = scored_rows(val, gens, refusal, load(HEATING_TASKS))
    write_jsonl(tmp_path / "baseline_predictions.jsonl", rows)
    write_json(tmp_path / "baseline_scores.json", score(rows))
    return tmp_path, val, write_params(tmp_path / "params.yaml", small_params)


def evaluate_args(root: Path, params: Path, val: Path, url: str) -> list:
    return [
        "--endpoint", url, "--model", MODEL, "--val", val, "--params", params, "--cache", root / "cache",
        "--baseline-predictions", root / "baseline_predictions.jsonl",
        "--baseline-scores", root / "baseline_scores.json", "--predictions", root / "finetuned_predictions.jsonl",
        "--metrics", root / "eval.json", "--report", root / "eval.md", "--plot", root / "eval_tasks.csv",
        "--tasks", HEATING_TASKS,
    ]  # fmt: skip


def test_evaluate_endpoint_scores_the_served_answers_against_the_baseline(eval_inputs, tiny_splits, monkeypatch):
    root, val, params = eval_inputs
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-42")
    reference = {e["messages"][-2]["content"]: e["messages"][-1]["content"] for e in val}
    with FaultServer(answer=lambda p: f"  {reference[p]}\n") as server:  # the right answer, padded
        server.faults[val[0]["messages"][-2]["content"]] = ["500", "reset"]
        result = invoke(evaluate_cli, evaluate_args(root, params, tiny_splits.val, server.url))
    assert_ok(result)
    metrics = json.loads((root / "eval.json").read_text())
    assert set(metrics) == {"baseline", "finetuned", "delta"}
    assert metrics["baseline"] == json.loads((root / "baseline_scores.json").read_text())
    tasks = {"overall"} | {e["task"] for e in val}
    assert set(metrics["finetuned"]) == set(metrics["delta"]) == tasks
    assert metrics["finetuned"]["overall"]["exact_match"] == 1.0  # stripped like local answers
    assert metrics["delta"]["overall"]["exact_match"] == 1.0
    assert metrics["finetuned"]["overall"]["latency_p50_ms"] > 0  # in the uncached metrics, not the predictions
    assert not any("latency_ms" in r for r in load_jsonl(root / "finetuned_predictions.jsonl"))
    assert (root / "eval.md").is_file() and (root / "eval.png").is_file()
    # Greedy, with eval.max_new_tokens, the key in a header only.
    assert all(b["temperature"] == 0 and b["max_tokens"] == 16 and b["model"] == MODEL for b in server.bodies)
    assert set(server.authorization) == {"Bearer sk-test-SECRET-42"}
    for f in root.rglob("*"):
        assert not f.is_file() or b"SECRET" not in f.read_bytes(), f
    assert "SECRET" not in result.output


def test_evaluate_endpoint_needs_the_model_name(eval_inputs, tiny_splits):
    root, _, params = eval_inputs
    args = evaluate_args(root, params, tiny_splits.val, "http://127.0.0.1:1/v1")
    i = args.index("--model")
    result = invoke(evaluate_cli, args[:i] + args[i + 2 :])
    assert result.exit_code == 2 and "--endpoint needs --model NAME" in result.output


def test_finetune_prints_an_endpoint_failure_as_one_error_line_and_exits_1(eval_inputs, tiny_splits, capsys):
    from finetune.cli import main

    root, _, params = eval_inputs
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: refused on every try
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *map(str, evaluate_args(root, params, tiny_splits.val, url))])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {url}/chat/completions: connection refused") and "3 attempts" in last


def test_evaluate_domain_endpoint_names_one_adapter_of_a_server_and_writes_beside_the_stage(
    eval_inputs, tiny_splits, monkeypatch
):
    """`finetune evaluate --domain D --endpoint URL --model D`: one adapter of a multi-adapter server, by its name,
    on that domain's val set, task file and params; its outputs never land on the evaluate stage's."""
    root, val, params = eval_inputs
    domain = root / "domains" / "heating"
    domain.mkdir(parents=True)
    shutil.copy(HEATING_TASKS, domain / "tasks.yaml")
    (domain / "params.yaml").write_text("eval:\n  max_new_tokens: 12\n")
    for name in ("baseline_predictions.jsonl", "baseline_scores.json"):
        (root / "data/eval/heating").mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, root / "data/eval/heating" / name)
    (root / "data/processed/heating").mkdir(parents=True)
    shutil.copy(tiny_splits.val, root / "data/processed/heating/val.jsonl")
    monkeypatch.chdir(root)
    reference = {e["messages"][-2]["content"]: e["messages"][-1]["content"] for e in val}
    with FaultServer(answer=lambda p: reference[p]) as server:
        args = ["--domain", "heating", "--endpoint", server.url, "--model", "heating"]  # params.yaml is in root
        result = invoke(evaluate_cli, [*args, "--cache", root / "cache"])
    assert_ok(result)
    assert {b["model"] for b in server.bodies} == {"heating"}  # the adapter, by its name
    assert params == root / "params.yaml"
    assert {b["max_tokens"] for b in server.bodies} == {12}  # the domain's params.yaml overlays the repository's
    served = json.loads((root / "metrics/served/heating.json").read_text())
    assert served["finetuned"]["overall"]["exact_match"] == 1.0
    assert (root / "data/eval/heating/served_predictions.jsonl").is_file()
    assert (root / "reports/heating/served.md").is_file()
    assert (
        not (root / "metrics/eval").exists() and not (root / "data/eval/heating/finetuned_predictions.jsonl").exists()
    )
