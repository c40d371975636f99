"""`finetune generate` with the optional teacher LLM (generate.teacher): paraphrased questions from a fault server
(exact answers, to check what is kept and what dropped) and from a real `transformers serve` process serving the
tiny base (gibberish answers: the plumbing, requests, cache and counts)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from finetune.generation.splits import split
from finetune.generation.taskfile import load as load_tasks
from finetune.generation.teacher import INSTRUCTION, split_prefix
from finetune.io import load_jsonl
from stages.generate import cli as generate_cli
from tests.conftest import HEATING_TASKS, TINY_BLOCKS, assert_ok, invoke, slow_fixture, typed, write_params
from tests.serving import FaultServer, free_port, transformers_serve


def teacher_params(small_params: dict, url: str, model: str, cache: Path, mode="paraphrase", **kw) -> dict:
    # Paraphrases only: the pairs the teacher writes from blocks are tests/test_teacher_pairs.py's.
    small_params["generate"]["teacher"].update(
        endpoint=url, model=model, cache=str(cache), timeout_s=30, max_retries=2, backoff_s=0.01, mode=mode, **kw
    )
    return small_params


def generate(root: Path, blocks: Path, params: dict, tag: str):
    params_file = write_params(root / f"{tag}.params.yaml", params)
    out, metrics = root / f"{tag}/examples.jsonl", root / f"{tag}/generate.json"
    result = invoke(
        generate_cli,
        ["--input", blocks, "--output", out, "--metrics", metrics, "--tasks", HEATING_TASKS, "--params", params_file],
    )
    assert_ok(result)
    return load_jsonl(out), json.loads(metrics.read_text()), result


def without_teacher(small_params: dict) -> list[dict]:
    from finetune.generation.examples import run
    from finetune.generation.taskfile import load

    return run(TINY_BLOCKS, typed(small_params).generate, load(HEATING_TASKS))


def rewording(question: str) -> str:
    """The fault server's teacher: mostly a good paraphrase, and each way a bad one goes for a few questions."""
    if "sourdough" in question:
        return "   "
    if "capital of Australia" in question:
        return f" {question} "  # identical once whitespace is ignored
    if "poem" in question:
        return "Well, " + "a very long answer " * 20
    if "chess" in question:
        return f'"[QA] Please explain: {question}"'  # quoted, task prefix echoed: both cleaned off
    return f"Please tell me: {question}"


def test_teacher_adds_a_paraphrase_per_example_and_counts_the_dropped(tmp_path, tiny_blocks_file, small_params):
    originals = without_teacher(small_params)
    with FaultServer(answer=rewording) as server:
        server.faults[originals[0]["messages"][1]["content"].split("] ", 1)[1]] = ["500"]  # retried, then fine
        params = teacher_params(small_params, server.url, "teacher", tmp_path / "cache")
        examples, metrics, _ = generate(tmp_path, tiny_blocks_file, params, "first")

    # One request per example: the question without its task prefix, after the instruction, with a seed.
    assert sum(server.counts.values()) == len(originals) + 1
    assert all(b["messages"][0] == {"role": "system", "content": INSTRUCTION} for b in server.bodies)
    assert not any(b["messages"][1]["content"].startswith("[") for b in server.bodies)
    assert {b["seed"] for b in server.bodies} == {small_params["generate"]["seed"]}

    paraphrases = metrics["teacher"]["paraphrases"]
    assert {k: v for k, v in paraphrases.items() if k != "per_task"} == {
        "requested": len(originals),
        "added": len(originals) - 3,
        "dropped": {"empty": 1, "identical": 1, "too_long": 1, "rejected": 0},
        "rejected_reasons": {},
    }
    per_task = paraphrases["per_task"]
    assert set(per_task) == {e["task"] for e in originals}
    assert sum(t["requested"] for t in per_task.values()) == len(originals)
    assert sum(t["added"] for t in per_task.values()) == len(originals) - 3
    assert metrics["examples"] == len(examples) == 2 * len(originals) - 3
    by_id = {e["id"]: e for e in examples}
    assert [e for e in examples if "paraphrase_of" not in e["meta"]] == originals  # originals unchanged, in order
    for i, e in enumerate(examples):
        if "paraphrase_of" not in e["meta"]:
            continue
        original = by_id[e["meta"]["paraphrase_of"]]
        assert examples[i - 1] is original  # right after its original
        assert e["id"] != original["id"]
        for key in ("task", "source", "block_id"):
            assert e[key] == original[key]
        assert e["messages"][0] == original["messages"][0] and e["messages"][2] == original["messages"][2]
        prefix, question = original["messages"][1]["content"].split(" ", 1)
        assert e["messages"][1]["content"] in (
            f"{prefix} Please tell me: {question}",
            f"{prefix} Please explain: {question}",
        )
        assert {k: v for k, v in e["meta"].items() if k != "paraphrase_of"} == original["meta"]
    # Grouped by source, the split can never put a paraphrase on the other side of its original.
    train, val = split(examples, 0.3, 0)
    val_ids = {e["id"] for e in val}
    assert all(
        (e["id"] in val_ids) == (e["meta"]["paraphrase_of"] in val_ids)
        for e in examples
        if "paraphrase_of" in e["meta"]
    )


def test_each_paraphrase_is_its_own_request_and_a_repeat_is_dropped(tmp_path, tiny_blocks_file, small_params):
    originals = without_teacher(small_params)
    with FaultServer(answer=lambda q: f"Please tell me: {q}") as server:
        params = teacher_params(small_params, server.url, "teacher", tmp_path / "cache", paraphrases=2)
        examples, metrics, _ = generate(tmp_path, tiny_blocks_file, params, "first")
    seed = small_params["generate"]["seed"]
    assert sorted(b["seed"] for b in server.bodies) == sorted([seed, seed + 1] * len(originals))
    assert len(list((tmp_path / "cache").iterdir())) == 2 * len(originals)
    # This teacher answers both the same way: the second is dropped as a repeat.
    assert metrics["teacher"]["paraphrases"]["added"] == len(originals)
    assert metrics["teacher"]["paraphrases"]["dropped"]["identical"] == len(originals)


def test_a_rewording_the_server_refuses_as_too_long_is_dropped_as_rejected_per_task_and_warned_once(
    tmp_path, tiny_blocks_file, small_params
):
    originals = without_teacher(small_params)
    prefixes = {name: task.prefix for name, task in load_tasks(HEATING_TASKS).tasks.items()}
    # FaultServer counts a word as a token: the instruction and the question. A context one under the longest
    # refuses the two longest lengths of question, whichever tasks they belong to.
    words = [
        len(INSTRUCTION.split()) + len(split_prefix(e["messages"][1]["content"], prefixes[e["task"]])[1].split())
        for e in originals
    ]
    context = max(words) - 1
    refused = Counter(e["task"] for e, n in zip(originals, words) if n >= context)
    assert 0 < sum(refused.values()) < len(originals)
    with FaultServer(answer=rewording, context=context, refuse_status=422) as server:
        params = teacher_params(small_params, server.url, "teacher", tmp_path / "cache")
        examples, metrics, result = generate(tmp_path, tiny_blocks_file, params, "first")
        asked = len(server.bodies)
        again, metrics_again, _ = generate(tmp_path, tiny_blocks_file, params, "rerun")
        assert len(server.bodies) == asked == len(originals)  # refusals are cached: the rerun asks nothing
    assert (again, metrics_again) == (examples, metrics)

    stats = metrics["teacher"]["paraphrases"]
    assert stats["dropped"]["rejected"] == sum(refused.values())
    reason = "HTTP 422: The prompt has N tokens, but the model takes at most N."
    assert stats["rejected_reasons"] == {reason: sum(refused.values())}
    for task, t in stats["per_task"].items():
        assert t["dropped"]["rejected"] == refused[task]
        assert t["rejected_reasons"] == ({reason: refused[task]} if refused[task] else {})
    lines = result.output.splitlines()
    for task, n in refused.items():
        assert f"[generate] teacher: task {task}: {n} rewording requests refused by the server, dropped: " in (
            "\n".join(lines)
        )
        [warning] = [line for line in lines if line.startswith(f"[generate] warning: task {task}: ")]
        largest = max(w for e, w in zip(originals, words) if e["task"] == task)
        assert f"{n} rewording requests too large for the teacher (up to {largest} tokens" in warning
        assert f"the server takes at most {context})" in warning and "generate.teacher.max_tokens" in warning
    # A refused question keeps its example and gets no paraphrase; the others get theirs.
    paraphrased_ids = {e["meta"]["paraphrase_of"] for e in examples if "paraphrase_of" in e["meta"]}
    assert not any(e["id"] in paraphrased_ids for e, n in zip(originals, words) if n >= context)
    assert stats["added"] == len(paraphrased_ids) == len(originals) - sum(refused.values()) - 3


def test_teacher_without_a_model_name_is_a_params_error(tmp_path, tiny_blocks_file, small_params):
    params = teacher_params(small_params, "http://127.0.0.1:1/v1", None, tmp_path / "cache")
    params_file = write_params(tmp_path / "params.yaml", params)
    args = ["--input", tiny_blocks_file, "--output", tmp_path / "e.jsonl", "--metrics", tmp_path / "m.json"]
    result = invoke(generate_cli, [*args, "--tasks", HEATING_TASKS, "--params", params_file])
    assert "generate.teacher.model is not" in str(result.exception)


@slow_fixture(scope="module")
def base_server(tiny_base, tmp_path_factory):
    with transformers_serve(tiny_base, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def test_teacher_on_a_real_server_adds_examples_and_a_rerun_asks_nothing(
    tmp_path, tiny_blocks_file, small_params, tiny_base, base_server
):
    # Plumbing only, so few and short requests: the server generates one request at a time, ~20 ms a token here.
    small_params["generate"]["tasks"] = [t for t in small_params["generate"]["tasks"] if t != "REFUSAL"]
    originals = without_teacher(small_params)
    cache = tmp_path / "cache"
    params = teacher_params(small_params, base_server, str(tiny_base), cache, max_tokens=4)
    examples, metrics, _ = generate(tmp_path, tiny_blocks_file, params, "first")
    t = metrics["teacher"]["paraphrases"]
    assert t["requested"] == len(originals) == len(list(cache.iterdir()))  # one cached answer per question
    assert t["added"] + sum(t["dropped"].values()) == t["requested"]
    assert len(examples) == len(originals) + t["added"]
    original_ids = {o["id"] for o in originals}
    assert [e for e in examples if e["id"] in original_ids] == originals
    assert all(e["meta"]["paraphrase_of"] in original_ids for e in examples if e["id"] not in original_ids)

    # The rerun, pointed at a port nothing listens on with no retries, passes only if every answer is cached.
    params["generate"]["teacher"].update(endpoint=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    again, metrics_again, result = generate(tmp_path, tiny_blocks_file, params, "second")
    assert "0 to ask" in result.output
    assert again == examples and metrics_again == metrics
