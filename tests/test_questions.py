"""The domain's own questions (domains/<name>/questions.yaml): loaded and checked with a line for each mistake,
answered by the base and the adapter in evaluate, scored into the metrics' `questions` section, shown first in the
HTML report and compare.md, and flat keys `<domain>.questions.*` in compare.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from finetune.evaluation import questions
from finetune.evaluation.metrics import rouge_l
from finetune.io import InputError, load_jsonl, write_jsonl
from stages.baseline import cli as baseline_cli
from stages.compare import cli as compare_cli
from stages.evaluate import cli as evaluate_cli
from tests.conftest import HEATING_TASKS, assert_ok, invoke

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOMAINS = ("cli_tool", "datasheets", "heating", "skein_howto")
GOOD = """\
questions:
  - question: my boiler shows F28, what now?
    reference: Check the gas valve and the inlet pressure.
    keypoints: [gas valve]
    source: manual.md
  - question: What is the capital of France?
    expect: refuse
"""


def write(tmp_path: Path, text: str, name: str = "questions.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_question_file_reads_as_val_shaped_examples_with_the_refusal_as_a_refused_question_s_reference(tmp_path):
    qs = questions.load(write(tmp_path, GOOD))
    examples = questions.examples(qs, "You are a test assistant.", "I can only help with boilers.")
    assert [e["task"] for e in examples] == [questions.QUESTION_TASK, questions.REFUSAL_TASK]
    assert [m["role"] for m in examples[0]["messages"]] == ["system", "user", "assistant"]
    assert examples[0]["messages"][0]["content"] == "You are a test assistant."
    assert examples[0]["meta"] == {"keypoints": ["gas valve"]} and examples[0]["source"] == "manual.md"
    assert examples[1]["messages"][-1]["content"] == "I can only help with boilers."
    assert len({e["id"] for e in examples}) == 2


def test_the_chat_jsonl_form_reads_as_the_same_questions(tmp_path):
    lines = [
        {
            "messages": [
                {"role": "user", "content": "my boiler shows F28, what now?"},
                {"role": "assistant", "content": "Check the gas valve and the inlet pressure."},
            ],
            "keypoints": ["gas valve"],
            "source": "manual.md",
        },
        {"messages": [{"role": "user", "content": "What is the capital of France?"}], "expect": "refuse"},
    ]
    path = tmp_path / "questions.jsonl"
    write_jsonl(path, lines)
    assert questions.load(path) == questions.load(write(tmp_path, GOOD))


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (
            GOOD.replace("    keypoints: [gas valve]\n", "    keypoint: [gas valve]\n"),
            4,
            "questions.0.keypoint: not a key",
        ),
        (GOOD.replace("    reference: Check the gas valve and the inlet pressure.\n", ""), 2, "needs its reference"),
        (GOOD.replace("expect: refuse", "expect: decline"), 7, "expect: input should be 'answer' or 'refuse'"),
        (GOOD.replace("[gas valve]", "[0x5A]"), 4, "expected text, got 90 (put it in quotes)"),
        (GOOD.replace("  - question: What is", "  - questio: What is"), 6, "questions.1"),
        ("questions: [\n", 2, "not valid YAML"),
    ],
)
def test_a_bad_entry_stops_with_path_line_and_what_is_wrong(tmp_path, text, line, says):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        questions.load(path)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert says in str(e.value)


def test_a_bad_chat_line_names_its_line(tmp_path):
    path = write(
        tmp_path,
        '{"messages": [{"role": "user", "content": "hi?"}], "expect": "refuse"}\n{"messages": 3}\n',
        "questions.jsonl",
    )
    with pytest.raises(InputError, match=r"questions.jsonl:2: messages: expected a list"):
        questions.load(path)


def test_evaluate_stops_on_a_bad_question_file_with_one_line_before_loading_a_model_and_writes_nothing(tmp_path):
    val = tmp_path / "val.jsonl"
    write_jsonl(
        val,
        [
            {
                "id": "a",
                "task": "QA",
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            }
        ],
    )
    bad = write(tmp_path, GOOD.replace("expect: refuse", "expect: maybe"))
    outs = {name: tmp_path / "out" / name for name in ("p.jsonl", "m.json", "r.md", "e.csv", "q.jsonl")}
    result = invoke(
        evaluate_cli,
        [
            "--model",
            tmp_path / "no-base",
            "--adapter",
            tmp_path / "no-adapter",
            "--val",
            val,
            "--baseline-predictions",
            tmp_path / "b.jsonl",
            "--baseline-scores",
            tmp_path / "b.json",
            "--predictions",
            outs["p.jsonl"],
            "--metrics",
            outs["m.json"],
            "--report",
            outs["r.md"],
            "--plot",
            outs["e.csv"],
            "--tasks",
            HEATING_TASKS,
            "--questions",
            bad,
            "--question-answers",
            outs["q.jsonl"],
            "--params",
            ROOT / "params.yaml",
        ],
    )
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f"{bad}:7: questions.1.expect:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("domain", SAMPLE_DOMAINS)
def test_every_sample_domain_has_15_questions_or_more_with_refusals_and_questions_needing_two_facts(domain):
    path = ROOT / "domains" / domain / "questions.yaml"
    qs = questions.load(path)
    answered = [q for q in qs if q.expect == "answer"]
    assert len(qs) >= 15 and len(answered) >= 12
    assert sum(q.expect == "refuse" for q in qs) >= 3
    # Two facts: two key points or more, each a fact the answer must hold.
    assert sum(len(q.keypoints) >= 2 for q in answered) >= 3
    # Worded as a person asks, not as a template's `[TASK]` prefix does.
    assert not [q.question for q in qs if q.question.startswith("[")]
    assert len({q.question for q in qs}) == len(qs)


def test_no_sample_question_is_a_training_question_of_its_domain():
    # A question copied from raw/ (the heating Q&A log) would be in train: it would measure recall, not use.
    for domain in SAMPLE_DOMAINS:
        raw = "\n".join(
            p.read_text(encoding="utf-8", errors="ignore").casefold()
            for p in (ROOT / "domains" / domain / "raw").iterdir()
            if p.suffix in (".md", ".jsonl", ".html", ".csv")
        )
        copied = [
            q.question
            for q in questions.load(ROOT / "domains" / domain / "questions.yaml")
            if q.question.casefold() in raw
        ]
        assert not copied, (domain, copied)


# --- end to end on the tiny model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["questions: []\n", "# our users' questions go here\n", ""])
def test_a_new_domain_s_file_may_hold_no_questions_yet(tmp_path, text):
    assert questions.load(write(tmp_path, text)) == []


def evaluate_args(trained, root: Path, out: Path, params) -> list:
    """evaluate's arguments over the baseline outputs under `root` (evaluate_with's), writing under `out`."""
    args = ["--model", trained.base, "--adapter", trained.adapter, "--val", trained.splits.val]
    args += ["--baseline-predictions", root / "data/eval/heating/b.jsonl"]
    args += ["--baseline-scores", root / "data/eval/heating/b.json"]
    args += ["--predictions", out / "data/eval/heating/p.jsonl", "--metrics", out / "metrics/eval/heating.json"]
    args += ["--report", out / "reports/heating/eval.md", "--plot", out / "reports/heating/eval_tasks.csv"]
    return [*args, "--tasks", HEATING_TASKS, "--params", params]


def evaluate_with(root: Path, trained, qfile: Path) -> Path:
    """Run baseline, then evaluate with `qfile`, under root; the path of evaluate's answers to the questions."""
    common = ["--val", trained.splits.val, "--tasks", HEATING_TASKS, "--params", trained.params_file]
    outs = ["--predictions", root / "data/eval/heating/b.jsonl", "--scores", root / "data/eval/heating/b.json"]
    timing = ["--timing", root / "timing.json"]
    assert_ok(invoke(baseline_cli, ["--model", trained.base, *outs, *timing, *common]))
    answers = root / "data/questions/heating.jsonl"
    args = evaluate_args(trained, root, root, trained.params_file)
    assert_ok(invoke(evaluate_cli, [*args, "--questions", qfile, "--question-answers", answers]))
    return answers


def test_evaluate_with_no_questions_yet_scores_val_and_leaves_an_empty_answers_file(tmp_path, trained):
    answers = evaluate_with(tmp_path, trained, write(tmp_path, "questions: []\n"))
    assert answers.read_text() == ""  # a DVC out: there, so report and compare run, and empty
    result = json.loads((tmp_path / "metrics/eval/heating.json").read_text())
    assert "questions" not in result and result["finetuned"]["overall"]["n"] > 0


@pytest.fixture(scope="module")
def asked(tmp_path_factory, trained):
    root = tmp_path_factory.mktemp("questions")
    qfile = write(root, GOOD.replace("source: manual.md\n", "source: manual.md\n    task: QA\n"))
    answers = evaluate_with(root, trained, qfile)
    return root, json.loads((root / "metrics/eval/heating.json").read_text()), load_jsonl(answers)


def test_evaluate_scores_both_models_on_the_questions_first_in_the_metrics(asked):
    _, result, _ = asked
    assert next(iter(result)) == "questions"
    q = result["questions"]
    assert q["n"] == 2
    for side in ("baseline", "finetuned"):
        assert {"rouge_l", "chrf", "exact_match", "keypoint_coverage", "refusal_accuracy"} <= set(q[side])
        assert q[side]["n"] == 2
    assert q["delta"]["rouge_l"] == pytest.approx(q["finetuned"]["rouge_l"] - q["baseline"]["rouge_l"])
    # The template gap: val's ROUGE-L minus the questions', for each model.
    assert q["template_gap"]["rouge_l"] == pytest.approx(
        result["finetuned"]["overall"]["rouge_l"] - q["finetuned"]["rouge_l"]
    )
    assert "judge" not in q  # off by default: no server asked


def test_the_answers_file_holds_each_question_with_both_answers_and_the_reference(asked):
    _, _, answers = asked
    assert [a["question"] for a in answers] == ["my boiler shows F28, what now?", "What is the capital of France?"]
    assert answers[0]["reference"] == "Check the gas valve and the inlet pressure."
    for a in answers:
        for side in ("base", "finetuned"):
            assert isinstance(a[side]["prediction"], str)
            assert a[side]["rouge_l"] == rouge_l(a[side]["prediction"], a["reference"])


def test_compare_puts_flat_question_keys_and_every_question_first_on_its_page(asked, tmp_path):
    root, result, _ = asked
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["domains"] = {"heating": {"init_from": "base"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    interference = tmp_path / "interference"
    interference.mkdir()
    (interference / "heating.json").write_text('{"on": {}}')
    out, page = tmp_path / "compare.json", tmp_path / "compare.md"
    assert_ok(
        invoke(
            compare_cli,
            [
                "--eval-dir",
                root / "metrics/eval",
                "--interference-dir",
                interference,
                "--questions-dir",
                root / "data/questions",
                "--metrics",
                out,
                "--headline",  # given, like every out: the default is the repository's own metrics/headline.json
                tmp_path / "headline.json",
                "--report",
                page,
                "--params",
                tmp_path / "params.yaml",
            ],
        )
    )
    q = json.loads(out.read_text())["heating"]["questions"]
    assert q["rouge_l"] == result["questions"]["finetuned"]["rouge_l"]
    assert q["rouge_l_base"] == result["questions"]["baseline"]["rouge_l"]
    assert all(not isinstance(v, dict) for v in q.values())  # flat: heating.questions.rouge_l in `dvc exp show`
    text = page.read_text()
    assert text.startswith("# Your questions")
    assert "| my boiler shows F28, what now? | Check the gas valve and the inlet pressure. |" in text


def test_with_a_judge_evaluate_grades_both_models_on_the_questions_and_on_val_and_a_rerun_asks_nothing(
    asked, trained, tmp_path
):
    from tests.serving import FaultServer

    root, _, _ = asked
    params = yaml.safe_load(Path(trained.params_file).read_text())
    qfile = write(tmp_path, GOOD)

    def run(url: str) -> dict:
        params["eval"]["judge"] = {
            "endpoint": url,
            "model": "replay",
            "val": True,
            "cache": str(tmp_path / "cache"),
            "max_retries": 0,
        }
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        metrics = tmp_path / "metrics/eval/heating.json"
        assert_ok(
            invoke(
                evaluate_cli,
                [
                    *evaluate_args(trained, root, tmp_path, tmp_path / "params.yaml"),
                    "--questions",
                    qfile,
                    "--question-answers",
                    tmp_path / "q.jsonl",
                ],
            )
        )
        return json.loads(metrics.read_text())

    with FaultServer(lambda p: '{"verdict": "correct", "reason": "replayed"}') as server:
        result = run(server.url)
        sent = len(server.bodies)
    n_val = len(load_jsonl(trained.splits.val))
    q = result["questions"]["judge"]
    assert q["finetuned"]["correct"] == q["baseline"]["correct"] == 2
    assert q["finetuned"]["semantic_match"] == 1.0
    # An answer both models gave alike is one request (the tiny model's are often both empty): asked counts requests.
    gradings = [q["baseline"], q["finetuned"], result["judge"]["baseline"], result["judge"]["finetuned"]]
    assert sum(g["asked"] for g in gradings) == sent
    assert result["judge"]["finetuned"]["parsed"] == result["judge"]["baseline"]["parsed"] == n_val
    answers = load_jsonl(tmp_path / "q.jsonl")
    assert answers[0]["finetuned"]["judge"] == {"verdict": "correct", "reason": "replayed"}
    # The rerun, pointed at a port nothing listens on, passes only if every verdict is cached.
    from tests.serving import free_port

    again = run(f"http://127.0.0.1:{free_port()}/v1")
    again_gradings = [again["questions"]["judge"][s] for s in ("baseline", "finetuned")]
    again_gradings += [again["judge"][s] for s in ("baseline", "finetuned")]
    assert [g["asked"] for g in again_gradings] == [0, 0, 0, 0]
    assert again["questions"]["judge"]["finetuned"]["correct"] == 2


def test_with_a_teacher_evaluate_scores_val_reworded_in_words_no_training_example_has(asked, trained, tmp_path):
    from tests.serving import FaultServer

    root, _, _ = asked
    params = yaml.safe_load(Path(trained.params_file).read_text())
    val = load_jsonl(trained.splits.val)
    with FaultServer(lambda p: f"{p} please") as server:
        params["generate"]["teacher"].update(
            endpoint=server.url, model="teacher", cache=str(tmp_path / "cache"), max_retries=0
        )
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        metrics = tmp_path / "metrics/eval/heating.json"
        assert_ok(invoke(evaluate_cli, [*evaluate_args(trained, root, tmp_path, tmp_path / "params.yaml")]))
        seeds = {b["seed"] for b in server.bodies}
    r = json.loads(metrics.read_text())["reworded"]
    assert r["n"] == len(val) == len(server.bodies)  # one rewording per val question
    # A seed generate never used (it uses seed .. seed + paraphrases - 1): a wording no training example has.
    g = params["generate"]
    assert seeds == {g["seed"] + max(1, g["teacher"]["paraphrases"])}
    assert r["gap"]["rouge_l"] == pytest.approx(r["finetuned_on_originals"]["rouge_l"] - r["finetuned"]["rouge_l"])
    assert r["finetuned"]["n"] == r["baseline"]["n"] == len(val)
