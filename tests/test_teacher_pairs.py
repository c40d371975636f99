"""`finetune generate` with a teacher LLM writing question/answer pairs from the blocks (generate.teacher, mode pairs).

A replay server (tests.serving.FaultServer answering from hand-written replies) plays the teacher: what is kept and
what is dropped, for which reason, how many requests a rerun and a one-document change make. A real `transformers
serve` of the tiny base (junk replies) checks the plumbing and that a run where everything is dropped ends cleanly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune.documents.sections import block
from finetune.generation import taskfile
from finetune.generation.builders import sentences
from finetune.generation.grounding import KeptQuestions, grounded_share
from finetune.generation.pair_requests import passage, read_pairs, read_verdict
from finetune.io import InputError, load_jsonl, write_jsonl
from finetune.serving.endpoint import EndpointError
from stages.generate import cli as generate_cli
from tests.conftest import (
    HEATING_TASKS,
    REPO,
    assert_ok,
    invoke,
    merge,
    repo_params,
    shrink,
    slow_fixture,
    write_params,
)
from tests.dvcrepo import sh
from tests.serving import FaultServer, free_port, transformers_serve

# Three sections of two documents (our own text), all read by the generic SECTION task, which opts in to pairs.
FILTER = block(
    "data/raw/pump.md#h=Pump manual/Filter",
    "section",
    "Pump manual / Filter",
    "The intake filter of the P-10 pump must be cleaned every 200 operating hours. A blocked filter lowers the flow "
    "rate and makes the pump run hot. Rinse the filter under running water; never use solvents.",
    headings=["Pump manual", "Filter"],
)
STORAGE = block(
    "data/raw/pump.md#h=Pump manual/Storage",
    "section",
    "Pump manual / Storage",
    "Store the pump in a dry room between 5 and 40 degrees Celsius. Drain all water from the housing before storing "
    "it for the winter.",
    headings=["Pump manual", "Storage"],
)
VALVE = block(
    "data/raw/valve.md#h=Valve guide/Pressure",
    "section",
    "Valve guide / Pressure",
    "The V-3 relief valve opens at 6 bar and closes again below 5.5 bar. Its spring must be replaced after 10,000 "
    "cycles of opening and closing.",
    headings=["Valve guide", "Pressure"],
)
VALVE_EDITED = {**VALVE, "id": "edited", "text": VALVE["text"].replace("6 bar", "7 bar")}

KEPT = (
    "How often must the intake filter of the P-10 pump be cleaned?",
    "It must be cleaned every 200 operating hours.",
)
VALVE_PAIR = ("At what pressure does the V-3 relief valve open?", "The V-3 relief valve opens at 6 bar.")
PAIRS = {
    # Chatter and a code fence around the JSON; one pair of each fate, and an item that is no pair.
    "makes the pump run hot": "Here are the pairs:\n```json\n"
    + json.dumps(
        {
            "pairs": [
                {"question": KEPT[0], "answer": KEPT[1]},
                {"question": "How often must the intake filter of a P-10 pump be cleaned?", "answer": KEPT[1]},
                {"question": "What does a blocked filter do?", "answer": "It voids the warranty and burns the motor."},
                {
                    "question": "Can the filter be cleaned with solvents?",
                    "answer": "Yes, rinse the filter with solvents.",
                },
                {"question": "Why?"},
            ]
        }
    )
    + "\n```\nI hope this helps.",
    "dry room": "Sorry, I can only write poems.",
    # A bare array, no {"pairs": …} around it; the second answer is too long.
    "opens at 6 bar": json.dumps(
        [
            {"question": VALVE_PAIR[0], "answer": VALVE_PAIR[1]},
            {"question": "When is the spring replaced?", "answer": "After 10,000 cycles of opening and closing. " * 6},
        ]
    ),
    "opens at 7 bar": json.dumps([{"question": VALVE_PAIR[0], "answer": "It opens at 7 bar."}]),
}
VERDICTS = {
    KEPT[0]: '{"supported": true}',
    "How often must the intake filter of a P-10 pump be cleaned?": '{"supported": true}',
    "Can the filter be cleaned with solvents?": '{"supported": false}',  # every word in the passage, the sense not
    VALVE_PAIR[0]: "Yes. The passage gives 6 bar.",  # plain text, no JSON: read all the same
}


def replay(prompt: str) -> str:
    """The recorded reply to a pairs request (keyed on its passage) or a judge request (keyed on its question)."""
    if prompt.startswith("Passage:") and "\nQuestion: " in prompt:
        question = prompt.split("\nQuestion: ", 1)[1].split("\nAnswer: ", 1)[0]
        return VERDICTS.get(question, '{"supported": false}')
    return next((reply for key, reply in PAIRS.items() if key in prompt), "no reply recorded")


def pairs_params(small_params: dict, url: str, cache: Path, **kw) -> dict:
    small_params["generate"]["tasks"] = ["SECTION"]
    small_params["generate"]["teacher"].update(
        {
            "endpoint": url,
            "model": "teacher",
            "mode": "pairs",
            "cache": str(cache),
            "max_answer_chars": 200,
            "concurrency": 2,
            "timeout_s": 30,
            "max_retries": 1,
            "backoff_s": 0.01,
            **kw,
        }
    )
    return small_params


def generate(root: Path, blocks: list[dict], params: dict, tag: str):
    (root / tag).mkdir()
    blocks_file = root / tag / "blocks.jsonl"
    write_jsonl(blocks_file, blocks)
    params_file = write_params(root / tag / "params.yaml", params)
    out, metrics = root / tag / "examples.jsonl", root / tag / "generate.json"
    args = ["--input", blocks_file, "--output", out, "--metrics", metrics, "--tasks", HEATING_TASKS]
    args += ["--params", params_file]
    result = invoke(generate_cli, args)
    return (
        result,
        (load_jsonl(out) if out.exists() else None),
        (json.loads(metrics.read_text()) if out.exists() else None),
    )


def test_a_pair_is_kept_only_when_grounded_judged_supported_and_new_and_every_drop_is_counted(tmp_path, small_params):
    with FaultServer(answer=replay, delay_s=0.02) as server:
        params = pairs_params(small_params, server.url, tmp_path / "cache")
        result, examples, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "first")
    assert_ok(result)
    # 3 chunks: 3 pairs requests, then a judge request for each pair that passed the word checks (3 + 1).
    assert len(server.bodies) == 7
    assert server.max_in_flight <= 2  # generate.teacher.concurrency
    # FILTER: 4 pairs and an item that is none; one kept, one a duplicate of it, one not grounded, one judged
    # unsupported. STORAGE: no JSON. VALVE: one kept (a plain-text "Yes" verdict), one too long.
    dropped = {"unparseable": 2, "too_long": 1, "not_grounded": 1, "judged_unsupported": 1, "duplicate": 1}
    counts = {"asked": 3, "parsed": 6, "judged": 4, "kept": 2, "dropped": {**dropped, "rejected": 0}}
    counts["rejected_reasons"] = {}
    assert metrics["teacher"] == {**counts, "per_task": {"SECTION": counts}}
    teacher = [e for e in examples if e["meta"].get("teacher") == "pairs"]
    assert [(e["messages"][1]["content"], e["messages"][2]["content"]) for e in teacher] == [
        (f"[QA] {KEPT[0]}", KEPT[1]),
        (f"[QA] {VALVE_PAIR[0]}", VALVE_PAIR[1]),
    ]
    assert [(e["task"], e["source"], e["block_id"]) for e in teacher] == [
        ("SECTION", FILTER["source"], FILTER["id"]),
        ("SECTION", VALVE["source"], VALVE["id"]),
    ]
    assert teacher[0]["messages"][0]["content"] == small_params["generate"]["system_prompt"]
    assert teacher[0]["meta"]["keypoints"] == sentences(KEPT[1])  # SECTION scores key points: the answer's sentences
    assert len(examples) == metrics["examples"] == 3 + 2  # one rule-based SECTION example per block, then the pairs


def test_a_rerun_asks_nothing_and_a_changed_document_asks_only_about_its_own_chunks(tmp_path, small_params):
    with FaultServer(answer=replay) as server:
        params = pairs_params(small_params, server.url, tmp_path / "cache")
        first, examples, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "first")
        assert_ok(first)
        assert len(server.bodies) == 7

        again, examples_again, metrics_again = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "rerun")
        assert_ok(again)
        assert len(server.bodies) == 7  # not one request
        assert "7 from the cache (100%)" in again.output
        assert (examples_again, metrics_again) == (examples, metrics)

        changed, examples_changed, _ = generate(tmp_path, [FILTER, STORAGE, VALVE_EDITED], params, "changed")
        assert_ok(changed)
    # The edited valve page: its pairs request and the judge of its one pair; the pump pages come from the cache.
    new = server.bodies[7:]
    assert len(new) == 2 and all("opens at 7 bar" in b["messages"][1]["content"] for b in new)
    assert "5 from the cache (71%)" in changed.output
    assert "It opens at 7 bar." in [e["messages"][2]["content"] for e in examples_changed]


def test_a_run_stopped_by_a_server_failure_resumes_from_the_cache(tmp_path, small_params):
    cache = tmp_path / "cache"
    with FaultServer(answer=replay) as server:
        server.faults[f"Passage:\n{passage(VALVE)}"] = ["down"]  # the valve page never gets an answer
        params = pairs_params(small_params, server.url, cache, concurrency=1, max_retries=0)
        stopped, _, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "stopped")
    assert isinstance(stopped.exception, EndpointError)  # `finetune` prints it as one `error: …` line
    assert len(list(cache.iterdir())) == 5  # the pump pages' answers (1 + 3 judges, 1) were kept as they came

    with FaultServer(answer=replay) as server:
        params["generate"]["teacher"]["endpoint"] = server.url
        resumed, examples, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "resumed")
    assert_ok(resumed)
    assert len(server.bodies) == 2  # only the valve page: its pairs and the judge of its one pair
    assert len([e for e in examples if e["meta"].get("teacher")]) == 2


def test_structured_output_is_asked_for_and_a_server_that_rejects_it_gets_plain_prompts(tmp_path, small_params):
    with FaultServer(answer=replay) as server:
        params = pairs_params(small_params, server.url, tmp_path / "structured", concurrency=1)
        result, structured_examples, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "structured")
    assert_ok(result)
    formats = [b["response_format"] for b in server.bodies]
    assert {(f["type"], f["json_schema"]["name"]) for f in formats} == {
        ("json_schema", "pairs"),
        ("json_schema", "verdict"),
    }

    with FaultServer(answer=replay, reject_fields=("response_format",)) as server:
        params = pairs_params(small_params, server.url, tmp_path / "plain", concurrency=1)
        result, examples, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "plain")
        assert_ok(result)
        # One rejected request, then the same 7 in plain text; the answers parse the same way.
        assert len(server.bodies) == 1 + 7
        assert not any("response_format" in b for b in server.bodies[1:])
        assert "rejected response_format" in result.output
        assert examples == structured_examples
        rerun, _, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "plain-rerun")
        assert_ok(rerun)
        assert len(server.bodies) == 8  # the plain answers are cached: nothing is asked, not even the rejected form


@pytest.mark.parametrize("on_empty", ["fail", "rules"])
def test_when_every_pair_is_dropped_generate_says_so_in_one_line_and_fails_or_goes_on(
    tmp_path, small_params, on_empty
):
    with FaultServer(answer=lambda prompt: "I am not sure what you mean.") as server:
        params = pairs_params(small_params, server.url, tmp_path / "cache", on_empty=on_empty)
        result, examples, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "run")
    line = "no pair kept of 0 parsed from 3 replies (unparseable 3)"
    if on_empty == "fail":
        assert isinstance(result.exception, InputError)  # `finetune` prints it as one `error: …` line
        assert line in str(result.exception) and "\n" not in str(result.exception)
        assert "generate.teacher.on_empty: rules" in str(result.exception)
    else:
        assert_ok(result)
        assert line in result.output and "going on with the rule-based examples" in result.output
        assert [e["meta"].get("teacher") for e in examples] == [None] * 3
        assert metrics["teacher"]["kept"] == 0 and metrics["teacher"]["dropped"]["unparseable"] == 3


# FILTER's pairs request is the longest of the three (209 words; STORAGE's and VALVE's 198 and 199): a server whose
# context is 209 "tokens" (FaultServer counts words) refuses it alone, and every judge request (under 100 words).
FILTER_WORDS = 209


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_request_the_server_refuses_as_too_long_is_dropped_as_rejected_and_the_task_warned_once(
    tmp_path, small_params, status
):
    with FaultServer(answer=replay, context=FILTER_WORDS, refuse_status=status) as server:
        params = pairs_params(small_params, server.url, tmp_path / "cache", pairs_max_tokens=20)
        result, examples, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "run")
        assert_ok(result)
        # FILTER: structured, then plain, both refused; STORAGE and VALVE: their pairs and VALVE's one judge.
        assert len(server.bodies) == 2 + 1 + 2
        # Refused in plain text too, it is the request that is refused, not structured output: that stays on.
        assert sum("response_format" not in b for b in server.bodies) == 1
        assert "rejected response_format" not in result.output
        rerun, examples_again, metrics_again = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "rerun")
        assert_ok(rerun)
        assert len(server.bodies) == 5  # the refusal is cached like an answer: a rerun asks nothing
    assert (examples_again, metrics_again) == (examples, metrics)

    reason = {
        400: "HTTP 400: The prompt has N tokens, but the model takes at most N.",
        413: "HTTP 413: Request Entity Too Large",
        422: "HTTP 422: The prompt has N tokens, but the model takes at most N.",
    }[status]
    dropped = {"unparseable": 1, "too_long": 1, "not_grounded": 0, "judged_unsupported": 0, "duplicate": 0}
    counts = {"asked": 3, "parsed": 2, "judged": 1, "kept": 1, "dropped": {**dropped, "rejected": 1}}
    counts["rejected_reasons"] = {reason: 1}
    assert metrics["teacher"] == {**counts, "per_task": {"SECTION": counts}}
    assert [e["messages"][2]["content"] for e in examples if e["meta"].get("teacher")] == [VALVE_PAIR[1]]

    assert f"teacher: task SECTION: 1 pairs requests refused by the server, dropped: {reason} (1)" in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("[generate] warning: task SECTION")]
    assert len(warnings) == 1
    assert "the teacher refused 1 of its pairs requests as too large" in warnings[0]
    if status == 413:  # no numbers in a bare 413: every knob that shapes the prompt is named
        assert "the server refused them as too large" in warnings[0]
        assert "tasks.SECTION.teacher" in warnings[0] and "extract.max_chars" in warnings[0]
        assert "generate.teacher.pairs_max_tokens (20)" in warnings[0]
    else:  # the instructions fit, so a smaller block would: how small, from the server's token counts
        assert f"(up to {FILTER_WORDS} tokens, the server takes at most {FILTER_WORDS})" in warnings[0]
        assert "lower extract.max_chars to about " in warnings[0]
        assert f"its largest block here is {len(passage(FILTER))} chars" in warnings[0]


def test_a_refused_judge_request_drops_its_pair_as_rejected_and_the_others_are_judged(tmp_path, small_params):
    with FaultServer(answer=replay) as server:
        judge = f"Passage:\n{passage(VALVE)}\n\nQuestion: {VALVE_PAIR[0]}\nAnswer: {VALVE_PAIR[1]}"
        server.faults[judge] = ["400", "400"]  # structured, then plain: refused both ways
        params = pairs_params(small_params, server.url, tmp_path / "cache")
        result, examples, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "run")
    assert_ok(result)
    t = metrics["teacher"]
    assert t["judged"] == 4 and t["kept"] == 1 and t["dropped"]["rejected"] == 1
    assert t["rejected_reasons"] == {"HTTP 400: Invalid request: the content was flagged": 1}
    assert "task SECTION: 1 judge requests refused by the server" in result.output
    assert "warning: task SECTION" not in result.output  # refused, but not for its size
    assert [e["messages"][2]["content"] for e in examples if e["meta"].get("teacher")] == [KEPT[1]]


def test_a_cached_refusal_is_asked_again_only_once_its_entry_is_deleted(tmp_path, small_params):
    cache = tmp_path / "cache"
    with FaultServer(answer=replay, context=FILTER_WORDS) as server:
        params = pairs_params(small_params, server.url, cache)
        assert_ok(generate(tmp_path, [FILTER, STORAGE, VALVE], params, "small")[0])
    refused = [f for f in cache.iterdir() if '"refused"' in f.read_text()]
    assert len(refused) == 2  # FILTER's pairs request, structured and plain

    with FaultServer(answer=replay) as server:  # the server restarted with a longer context
        params["generate"]["teacher"]["endpoint"] = server.url
        assert_ok(generate(tmp_path, [FILTER, STORAGE, VALVE], params, "same")[0])
        assert server.bodies == []
        for f in refused:
            f.unlink()
        result, _, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "asked-again")
    assert_ok(result)
    # Only FILTER: its pairs request and the judges of its 3 pairs that pass the word checks.
    assert len(server.bodies) == 4 and all(passage(FILTER) in b["messages"][1]["content"] for b in server.bodies)
    assert metrics["teacher"]["dropped"]["rejected"] == 0 and metrics["teacher"]["kept"] == 2


def test_a_teacher_that_refuses_every_request_ends_as_on_empty_says_naming_the_oversized_instructions(
    tmp_path, small_params
):
    # 150 words: under the task's instructions and seeds alone (~170), so no block size can make a request fit.
    with FaultServer(answer=replay, context=150) as server:
        params = pairs_params(small_params, server.url, tmp_path / "cache", on_empty="fail")
        result, _, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "run")
    assert isinstance(result.exception, InputError)
    assert "no pair kept of 0 parsed from 3 replies (rejected 3)" in str(result.exception)
    assert "\n" not in str(result.exception)
    warning = next(line for line in result.output.splitlines() if "warning: task SECTION" in line)
    assert "its instructions and seeds alone are ~" in warning and "shorten tasks.SECTION.teacher" in warning


def test_a_key_the_server_refuses_still_stops_generate_however_many_requests_it_would_drop(tmp_path, small_params):
    with FaultServer(answer=replay) as server:
        for block in (FILTER, STORAGE, VALVE):
            server.faults[f"Passage:\n{passage(block)}"] = ["401"]
        params = pairs_params(small_params, server.url, tmp_path / "cache", concurrency=1)
        result, _, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "run")
    assert isinstance(result.exception, EndpointError) and result.exception.status == 401


# --- reading replies, grounding, duplicates -------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, pairs, unreadable",
    [
        ('{"pairs": [{"question": "Q?", "answer": "A."}]}', [("Q?", "A.")], 0),
        ('Sure!\n```json\n[{"question": "Q?", "answer": "A."}]\n```', [("Q?", "A.")], 0),
        (r'{"question": " Q\n ?", "answer": " A. "}', [("Q ?", "A.")], 0),  # one pair, not in a list
        (
            '{"pairs": [{"question": "Q?", "answer": ""}, {"q": 1}, {"question": "R?", "answer": "B."}]}',
            [("R?", "B.")],
            2,
        ),
        ('{"pairs": [{"question": "Q?", "answer": "A cut-off rep', [], 1),  # max_tokens reached mid-JSON
        ("no JSON at all, {not even} [this]", [], 1),
        ('{"pairs": []}', [], 1),
    ],
)
def test_pairs_are_read_from_any_reply_that_holds_them(reply, pairs, unreadable):
    assert read_pairs(reply) == (pairs, unreadable)


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ('{"supported": true}', True),
        ('```json\n{"supported": false}\n```', False),
        ("Yes, the passage states it.", True),
        ("no.", False),
        ("true", True),
        ("The answer is probably right.", None),
        ('{"supported": "yes"}', None),
    ],
)
def test_the_judge_verdict_is_read_from_json_or_a_leading_yes_or_no(reply, verdict):
    assert read_verdict(reply) is verdict


def test_grounding_counts_the_answer_content_words_found_in_the_passage():
    passage = "Rinse the filter under running water; never use solvents."
    assert grounded_share("Rinse the filter under running water.", passage) == 1.0
    assert grounded_share("The Filter is rinsed with WATER.", passage) == pytest.approx(2 / 3)  # rinsed != rinse
    assert grounded_share("Yes, it is.", passage) == 0.0  # no content word: nothing the passage backs


def test_a_question_close_to_a_kept_one_is_a_duplicate():
    kept = KeptQuestions(90, ["How often must the intake filter of the P-10 pump be cleaned?"])
    assert kept.duplicate("how often must the intake filter of a P-10 pump be cleaned")
    assert kept.duplicate("How often must the P-10 pump intake filter be cleaned?")  # word order
    assert not kept.duplicate("How hot may the P-10 pump run?")


def test_only_a_task_that_reads_passages_can_opt_in_to_the_teacher(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "tasks:\n"
        "  REFUSAL:\n"
        "    prefix: '[QA]'\n"
        "    builder: refusal\n"
        "    check: exact\n"
        "    questions: ['What is the capital of France?']\n"
        "    teacher: {description: pairs}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"tasks.yaml:7: tasks.REFUSAL.teacher: the refusal builder has no passage"):
        taskfile.load(path)


# --- a real server: the tiny base behind `transformers serve` --------------------------------------------------


@slow_fixture(scope="module")
def short_base(tmp_path_factory, tiny_blocks_file) -> Path:
    """The tiny test base with a 384-token window (the default takes 1024): a server that refuses every prompt."""
    from stages.base import cli

    root = tmp_path_factory.mktemp("short")
    params = write_params(root / "params.yaml", merge(shrink(repo_params()), {"model": {"max_seq_len": 384}}))
    assert_ok(invoke(cli, ["--blocks", tiny_blocks_file, "--output", root / "base", "--params", params]))
    return root / "base"


@slow_fixture(scope="module")
def base_server(short_base, tmp_path_factory):
    with transformers_serve(short_base, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def test_a_real_server_that_refuses_every_pairs_prompt_as_too_long_has_each_dropped_with_its_reason(
    tmp_path, small_params, short_base, base_server
):
    # This base takes 384 tokens, prompt and answer; its tokenizer makes ~1 token of a character, so the pairs
    # instructions and seeds (~1,040 characters) alone are over it: `transformers serve` refuses every pairs request
    # (HTTP 400), and generate drops each as rejected instead of stopping.
    params = pairs_params(small_params, base_server, tmp_path / "cache", pairs_max_tokens=8, on_empty="rules")
    params["generate"]["teacher"]["model"] = str(short_base)
    result, examples, metrics = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "rules")
    assert_ok(result)
    t = metrics["teacher"]
    assert t["asked"] == 3 and t["kept"] == 0 and t["dropped"]["rejected"] == 3
    assert sum(t["dropped"].values()) == 3
    assert t["per_task"]["SECTION"] == {k: v for k, v in t.items() if k != "per_task"}
    [(reason, n)] = t["rejected_reasons"].items()
    assert n == 3 and reason.startswith("HTTP 400: The prompt has N tokens") and "at most N" in reason
    assert len(examples) == 3  # the rule-based examples, on_empty: rules
    assert "no pair kept of 0 parsed from 3 replies (rejected 3)" in result.output
    warnings = [line for line in result.output.splitlines() if "warning: task SECTION" in line]
    assert len(warnings) == 1 and "the server takes at most 384" in warnings[0]
    assert "its instructions and seeds alone are ~" in warnings[0] and "tasks.SECTION.teacher" in warnings[0]

    params["generate"]["teacher"]["on_empty"] = "fail"  # from the cache: the same refusals, now a one-line stop
    result, _, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "fail")
    assert isinstance(result.exception, InputError) and "(rejected 3)" in str(result.exception)


@pytest.mark.slow
def test_the_cache_shared_through_the_dvc_remote_spares_a_teammate_every_request(tmp_path, small_params):
    """docs/your-own-data.md's recipe: `dvc add` the cache folder, commit its .dvc file, `dvc push`; the teammate's
    `git clone` and `dvc pull` bring the replies, and their generate asks nothing."""
    mine, teammate, remote = tmp_path / "mine", tmp_path / "teammate", tmp_path / "remote"
    mine.mkdir()
    remote.mkdir()
    shutil.copy(REPO / ".gitignore", mine / ".gitignore")  # ours: it ignores data/interim/teacher_cache/
    sh(["git", "init", "-q"], mine)
    sh(["dvc", "init", "-q"], mine)
    sh(["dvc", "remote", "add", "-d", "team", str(remote)], mine)
    with FaultServer(answer=replay) as server:
        params = pairs_params(small_params, server.url, mine / "data/interim/teacher_cache")
        assert_ok(generate(tmp_path, [FILTER, STORAGE, VALVE], params, "my-run")[0])
    sh(["dvc", "add", "data/interim/teacher_cache"], mine)
    sh(["git", "add", "-A"], mine)
    sh(["git", "commit", "-qm", "teacher replies"], mine)
    assert "data/interim/teacher_cache.dvc" in sh(["git", "ls-files"], mine).stdout.split()
    sh(["dvc", "push"], mine)

    sh(["git", "clone", "-q", str(mine), str(teammate)], tmp_path)
    sh(["dvc", "pull"], teammate)
    # No server at all, no retries: it passes only if every reply comes from the pulled cache.
    params["generate"]["teacher"].update(
        endpoint=f"http://127.0.0.1:{free_port()}/v1",
        max_retries=0,
        cache=str(teammate / "data/interim/teacher_cache"),
    )
    result, examples, _ = generate(tmp_path, [FILTER, STORAGE, VALVE], params, "their-run")
    assert_ok(result)
    assert "7 from the cache (100%)" in result.output
    assert len([e for e in examples if e["meta"].get("teacher")]) == 2
