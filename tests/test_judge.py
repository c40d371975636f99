"""The judge (eval.judge): each answer graded against its reference by an OpenAI-compatible server, as correct,
partly correct or wrong with a one-line reason; unreadable replies and server errors counted, never a traceback;
replies cached per request, so a rerun asks nothing and an edited question asks about itself only."""

from __future__ import annotations

import json

import pytest

from finetune.evaluation.judge import grade, messages, passages, read_verdict
from finetune.evaluation.question_report import html_section
from finetune.params import Judge
from tests.conftest import slow_fixture
from tests.serving import FaultServer, transformers_serve

# Hand-written verdicts, one per question, in every form a server may reply: JSON, JSON in chatter, plain text.
REPLIES = {
    "Q1": '{"verdict": "correct", "reason": "names the gas valve"}',
    "Q2": 'Sure! {"verdict": "partly", "reason": "the pressure is missing"} Hope that helps.',
    "Q3": "Wrong: it talks about radiators",
    "Q4": "I am not sure what you want me to do.",
    "Q5": "never answered: the server fails on this one",
}


def rows() -> list[dict]:
    return [
        {"prompt": q, "reference": f"reference of {q}", "prediction": f"answer to {q}", "source": ""} for q in REPLIES
    ]


def user_message(row: dict) -> str:
    return messages(row["prompt"], row["reference"], row["prediction"])[-1]["content"]


def replay(prompt: str) -> str:
    question = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
    return REPLIES[question]


def judge(server_url: str, cache, **over) -> Judge:
    return Judge(
        **{"endpoint": server_url, "model": "judge", "cache": str(cache), "max_retries": 1, "backoff_s": 0} | over
    )


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"verdict": "correct", "reason": "same   value"}', ("correct", "same value")),
        ('```json\n{"verdict": "Partially", "reason": "x"}\n```', ("partly", "x")),
        ("Incorrect. The unit is wrong.", ("wrong", "The unit is wrong.")),
        ('{"verdict": "maybe", "reason": "x"}', None),
        ('{"supported": true}', None),
        ("The answer looks correct to me", None),  # a verdict word not first: not read as one
        ("", None),
    ],
)
def test_a_verdict_is_read_from_json_anywhere_in_the_reply_or_from_its_first_word(reply, verdict):
    assert read_verdict(reply) == verdict


def test_a_replay_judge_grades_correct_partly_wrong_and_counts_unparseable_and_errors(tmp_path):
    with FaultServer(replay) as server:
        server.faults[user_message(rows()[4])] = ["down"]
        graded = rows()
        counts = grade(graded, judge(server.url, tmp_path / "cache"), "evaluate", "answers")
    assert [r["judge"] and r["judge"]["verdict"] for r in graded] == ["correct", "partly", "wrong", None, None]
    assert graded[1]["judge"]["reason"] == "the pressure is missing"
    assert counts["correct"] == counts["partly"] == counts["wrong"] == 1
    assert (counts["parsed"], counts["unparseable"], counts["errors"]) == (3, 1, 1)
    # Partly counts half; unparseable and errors are left out of the rate, not counted as wrong.
    assert counts["semantic_match"] == pytest.approx((1 + 0.5) / 3)
    assert counts["asked"] == 4  # the failed request is not cached: a rerun asks it again


def test_a_rerun_asks_only_what_failed_and_an_edited_question_asks_about_itself_only(tmp_path):
    cache = tmp_path / "cache"
    with FaultServer(replay) as server:
        server.faults[user_message(rows()[4])] = ["500", "500"]  # both tries of the first run fail
        first = grade(rows(), judge(server.url, cache), "evaluate", "answers")
        again = grade(rows(), judge(server.url, cache), "evaluate", "answers")
        edited = rows()
        edited[0]["reference"] = "a reworded reference"
        after_edit = grade(edited, judge(server.url, cache), "evaluate", "answers")
    assert (first["asked"], first["errors"]) == (4, 1)
    assert (again["asked"], again["errors"]) == (1, 0)  # the error, asked again; the rest from the cache
    assert after_edit["asked"] == 1 and after_edit["correct"] == 1
    assert after_edit["partly"] == again["partly"] == 1


def test_a_server_without_structured_output_is_asked_in_plain_text(tmp_path):
    with FaultServer(replay, reject_fields=("response_format",)) as server:
        counts = grade(rows()[:3], judge(server.url, tmp_path / "cache"), "evaluate", "answers")
        plain = [b for b in server.bodies if "response_format" not in b]
    assert counts["parsed"] == 3 and len(plain) >= 3


def test_the_judge_sees_the_source_passage_a_question_names(tmp_path):
    blocks = [
        {"source": "domains/heating/raw/manual.md#f28", "text": "F28: check the gas valve."},
        {"source": "domains/heating/raw/manual.md#f22", "text": "F22: top up to 1.5 bar."},
    ]
    sources = passages(blocks, 1000)
    assert sources["manual.md"] == "F28: check the gas valve.\n\nF22: top up to 1.5 bar."
    assert sources["domains/heating/raw/manual.md#f22"] == "F22: top up to 1.5 bar."
    row = {**rows()[0], "source": "manual.md"}
    with FaultServer(replay) as server:
        grade([row], judge(server.url, tmp_path / "cache"), "evaluate", "answers", sources)
        (body,) = server.bodies
    assert "Documentation passage:\nF28: check the gas valve." in body["messages"][-1]["content"]


def test_a_judge_without_a_model_name_is_a_params_error(tmp_path):
    from finetune.io import InputError

    with pytest.raises(InputError, match="eval.judge.model is not"):
        grade(rows(), Judge(endpoint="http://127.0.0.1:1/v1", cache=str(tmp_path)), "evaluate", "answers")


def test_the_report_shows_each_question_with_both_answers_and_the_verdicts_escaped_in_full():
    long = "step " * 300 + "<script>alert(1)</script>"
    answers = [
        {
            "question": "Q & A?",
            "reference": "ref",
            "base": {"prediction": long, "rouge_l": 0.1},
            "finetuned": {"prediction": "ok", "rouge_l": 0.5, "judge": {"verdict": "partly", "reason": "a <b>"}},
        }
    ]
    scores = {"n": 1, "rouge_l": 0.5, "chrf": 0.4}
    section = {"n": 1, "baseline": scores, "finetuned": scores, "template_gap": {"rouge_l": 0.2, "rouge_l_base": 0.1}}
    html = html_section({"questions": section}, answers)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "step " * 300 in html  # in full, not cut
    assert "Q &amp; A?" in html and "judge: partly (a &lt;b&gt;)" in html
    assert "+0.200" in html  # the template gap, stated


@slow_fixture(scope="module")
def base_server(tiny_base, tmp_path_factory):
    with transformers_serve(tiny_base, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def test_a_real_server_that_cannot_judge_gives_unparseable_verdicts_counted_without_a_traceback(
    tmp_path, tiny_base, base_server
):
    # The tiny model writes no verdict: every reply is unreadable, counted, and the rate is None (nothing graded).
    graded = rows()[:3]
    counts = grade(
        graded, judge(base_server, tmp_path / "cache", model=str(tiny_base), max_tokens=8), "evaluate", "answers"
    )
    assert counts["parsed"] + counts["unparseable"] + counts["errors"] == 3
    assert counts["unparseable"] == 3 and counts["semantic_match"] is None
    assert counts["asked"] >= 3 and len(list((tmp_path / "cache").iterdir())) >= 3
    assert json.loads(next((tmp_path / "cache").iterdir()).read_text())["request"]["model"] == str(tiny_base)
