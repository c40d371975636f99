"""`finetune generate` over the task file: every task turns its blocks into chat examples with the params' system
prompt and the task's prefix, phrasings are chosen reproducibly, a task with nothing to read is a warning, and each
task's format check tells a well-formed answer from a malformed one."""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest
import yaml

from finetune.documents.sections import block
from finetune.generation.checks import passes
from finetune.generation.examples import example, merge_boilerplate, run
from finetune.generation.taskfile import load, parse
from finetune.io import InputError, load_jsonl, write_jsonl
from finetune.params import Generate
from finetune.schema import example_problems
from stages.generate import cli
from tests.conftest import HEATING_TASKS, REPO, TINY_BLOCKS, assert_ok, invoke, repo_params, write_params

SAMPLE_TASKS = ["TERMINOLOGY", "SPEC", "PROCEDURE", "EXPLANATION", "WIRING", "TROUBLESHOOTING", "QA", "REFUSAL"]
GPARAMS = {
    **repo_params()["generate"],
    # Every task of heating's task file, the generic ones too: some read nothing in the tiny corpus.
    "tasks": list(load(HEATING_TASKS).tasks),
    "seed": 42,
    "system_prompt": "Test system prompt: answer briefly.",
    "refusal": "Sorry, only Brenntal products.",
    "phrasings_per_item": 1,
}
CLI_TASKS = REPO / "domains/cli_tool/tasks.yaml"  # the generic tasks
BLOCKS_BY_ID = {b["id"]: b for b in TINY_BLOCKS}
TASKS = load(HEATING_TASKS)


def gparams(**changes) -> dict:
    return copy.deepcopy(GPARAMS) | changes


def typed(**changes) -> Generate:
    return Generate.model_validate(gparams(**changes))


def generate(tmp_path, blocks, generate_params, tasks_file=HEATING_TASKS):
    params = repo_params() | {"generate": generate_params}
    write_jsonl(tmp_path / "blocks.jsonl", blocks)
    args = ["--input", tmp_path / "blocks.jsonl", "--output", tmp_path / "examples.jsonl", "--tasks", tasks_file]
    args += ["--metrics", tmp_path / "generate.json", "--params", write_params(tmp_path / "params.yaml", params)]
    return invoke(cli, args)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    result = generate(root, TINY_BLOCKS, gparams())
    assert_ok(result)
    return load_jsonl(root / "examples.jsonl"), json.loads((root / "generate.json").read_text()), result


@pytest.mark.parametrize("task", SAMPLE_TASKS)
def test_every_sample_task_yields_system_user_assistant_examples_with_its_prefix(generated, task):
    examples = [e for e in generated[0] if e["task"] == task]
    assert examples, f"no {task} examples from the tiny corpus"
    for e in examples:
        assert {"id", "task", "source", "block_id", "messages", "meta"} <= set(e)
        assert example_problems(e) == []
        system, user, assistant = e["messages"]
        assert [system["role"], user["role"], assistant["role"]] == ["system", "user", "assistant"]
        if task != "QA" or BLOCKS_BY_ID[e["block_id"]]["messages"][0]["role"] != "system":
            assert system["content"] == GPARAMS["system_prompt"]
        assert user["content"].startswith(TASKS.tasks[task].prefix + " ")
        assert assistant["content"].strip()
        if task != "REFUSAL":
            block = BLOCKS_BY_ID[e["block_id"]]
            assert e["source"] == block["source"] and block["kind"] in TASKS.tasks[task].blocks.kind


def test_metrics_count_every_listed_task_including_those_with_none(generated):
    examples, metrics, _ = generated
    counts = Counter(e["task"] for e in examples)
    assert metrics["examples"] == len(examples)
    assert metrics["per_task"] == {t: counts[t] for t in sorted(GPARAMS["tasks"])}
    assert metrics["per_task"]["CODE"] == 0 and metrics["per_task"]["SPEC"] == 5


def test_a_task_with_nothing_to_read_is_a_warning_not_an_error(generated):
    _, metrics, result = generated
    empty = [t for t, n in metrics["per_task"].items() if n == 0]
    assert empty  # the tiny corpus has no code, definitions or free tables
    for t in empty:
        assert f"warning: task {t} made no examples" in result.stderr


SECTIONS_ONLY = """
tasks:
  NOTE:
    prefix: "[QA]"
    builder: section
    blocks: {kind: section}
    questions: ["What about {heading}?"]
    check: {name: min_words, words: 1}
"""


def test_blocks_of_a_kind_no_task_reads_are_named_with_the_builder_that_would_read_them(tmp_path):
    """Conversations under a task file made for documents: 0 examples from them, and the log says why."""
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(SECTIONS_ONLY)
    result = generate(tmp_path, TINY_BLOCKS, gparams(tasks=["NOTE"]), tasks)
    assert_ok(result)
    kinds = Counter(b["kind"] for b in TINY_BLOCKS)
    assert f"warning: {kinds['qa']} qa blocks read by no task: add a conversation task (blocks: {{kind: qa}})" in (
        result.stderr
    )
    assert f"warning: {kinds['list']} list blocks read by no task: add a steps task" in result.stderr
    assert "section blocks read by no task" not in result.stderr


def test_blocks_a_task_of_the_file_selects_are_no_warning_when_generate_tasks_leaves_that_task_out(tmp_path):
    # Leaving QA out of generate.tasks is the user's choice, not a task file that cannot read chat files.
    result = generate(tmp_path, TINY_BLOCKS, gparams(tasks=["SPEC", "REFUSAL"]))
    assert_ok(result)
    assert "read by no task" not in result.stderr


def test_a_kind_some_task_reads_part_of_is_no_warning(generated):
    # Short sections no task reads are normal; a warning is for a kind no task can read.
    assert "read by no task" not in generated[2].stderr


def test_generate_fails_only_when_no_task_makes_anything(tmp_path):
    result = generate(tmp_path, [b for b in TINY_BLOCKS if b["kind"] == "qa"], gparams(tasks=["SPEC", "CODE"]))
    assert isinstance(result.exception, InputError)
    assert "no examples" in str(result.exception) and str(tmp_path / "blocks.jsonl") in str(result.exception)
    assert not (tmp_path / "examples.jsonl").exists()


def test_example_ids_are_unique(generated):
    ids = [e["id"] for e in generated[0]]
    assert len(ids) == len(set(ids))


def test_every_generated_answer_passes_its_own_task_format_check(generated):
    for e in generated[0]:
        check = TASKS.tasks[e["task"]].check
        assert passes(check.name, check.args, e["messages"][-1]["content"], e["messages"][-1]["content"], e["meta"]), e


def test_phrasings_are_the_same_for_the_same_seed():
    assert run(TINY_BLOCKS, typed(seed=7), TASKS) == run(TINY_BLOCKS, typed(seed=7), TASKS)


def test_phrasings_differ_across_seeds_for_some_fact_but_the_answers_do_not():
    a, b = run(TINY_BLOCKS, typed(seed=1), TASKS), run(TINY_BLOCKS, typed(seed=2), TASKS)
    assert [e["messages"][1]["content"] for e in a] != [e["messages"][1]["content"] for e in b]
    assert [(e["block_id"], e["messages"][2]["content"]) for e in a] == [
        (e["block_id"], e["messages"][2]["content"]) for e in b
    ]


def test_adding_a_block_does_not_change_the_phrasing_of_another():
    without = run(TINY_BLOCKS[1:], typed(), TASKS)
    with_it = run(TINY_BLOCKS, typed(), TASKS)
    assert [e for e in with_it if e["block_id"] != TINY_BLOCKS[0]["id"]] == without


def test_phrasings_per_item_gives_that_many_different_questions_per_fact_at_most_one_per_phrasing():
    examples = run(TINY_BLOCKS, typed(phrasings_per_item=3), TASKS)
    per_fact = Counter((e["task"], e["block_id"], e["messages"][2]["content"]) for e in examples)
    spec = [n for (task, _, _), n in per_fact.items() if task == "SPEC"]
    assert spec and set(spec) == {3}
    wiring = [n for (task, _, _), n in per_fact.items() if task == "WIRING"]
    assert wiring == [len(TASKS.tasks["WIRING"].questions)] == [2]  # only two wiring phrasings exist
    prompts = [e["messages"][1]["content"] for e in examples]
    assert len(prompts) == len(set(prompts))


def test_refusal_examples_ask_every_question_of_the_task_file_and_answer_with_generate_refusal(generated):
    refusals = [e for e in generated[0] if e["task"] == "REFUSAL"]
    assert {e["messages"][2]["content"] for e in refusals} == {GPARAMS["refusal"]}
    questions = TASKS.tasks["REFUSAL"].questions
    assert len(questions) >= 100 and len(set(questions)) == len(questions)
    assert sorted(e["messages"][1]["content"] for e in refusals) == sorted(f"[QA] {q}" for q in questions)
    assert len({e["source"] for e in refusals}) == len(questions)  # one source each: the split spreads them


def test_terminology_answer_is_name_code_rating_unit_for_every_informal_name(generated):
    terms = [e for e in generated[0] if e["task"] == "TERMINOLOGY" and e["block_id"] == TINY_BLOCKS[0]["id"]]
    assert {e["messages"][2]["content"] for e in terms} == {"Brenntal Calora CA-20C combi boiler (CA-20C, 20 kW)"}
    prompts = [e["messages"][1]["content"] for e in terms]
    assert len(prompts) == 4  # one per informal name
    for name in ("calora combi 20", "Brenntal Kombitherme 20 kW", "20kW Brenntal gas combi", "ca20c boiler"):
        assert [p for p in prompts if name in p], name


def test_spec_answer_is_value_and_unit_and_the_question_names_parameter_and_product(generated):
    spec = {e["messages"][2]["content"]: e["messages"][1]["content"] for e in generated[0] if e["task"] == "SPEC"}
    assert set(spec) == {"24 kW", "32 kg", "20 mbar", "200 l", "10 bar"}
    assert "rated output" in spec["24 kW"] and "CA-24C" in spec["24 kW"]
    assert "maximum operating pressure" in spec["10 bar"] and "AQ-200" in spec["10 bar"]


def test_troubleshooting_answer_gives_cause_and_remedy_and_the_question_drops_the_cells_full_stop(generated):
    tr = [e for e in generated[0] if e["task"] == "TROUBLESHOOTING"]
    assert {e["messages"][2]["content"] for e in tr} == {
        "Cause: Leak or air in the system\nRemedy: Top up to 1.5 bar and bleed",
        "Cause: Gas supply closed\nRemedy: Open the gas valve and reset",
    }
    assert not [
        e for e in tr if "ignition.." in e["messages"][1]["content"] or "ignition. ." in e["messages"][1]["content"]
    ]


def test_a_document_preface_is_no_explanation_but_a_generic_section_question(generated):
    preface = next(b for b in TINY_BLOCKS if b["title"] == "Brenntal Service Manual — Heating")
    tasks = {e["task"] for e in generated[0] if e["block_id"] == preface["id"]}
    assert tasks == {"SECTION"}


def test_the_generic_tasks_leave_alone_what_a_sample_task_reads(generated):
    # The spec table is SPEC's: the generic TABLE task must not ask about it again.
    assert not [e for e in generated[0] if e["task"] == "TABLE"]


def test_a_conversation_keeps_its_own_system_message_unless_params_override_it():
    qa = [b for b in TINY_BLOCKS if b["kind"] == "qa"]
    own = run(qa, typed(tasks=["QA"]), TASKS)
    assert {e["messages"][0]["content"] for e in own} == {"Imported.", GPARAMS["system_prompt"]}
    overridden = run(qa, typed(tasks=["QA"], override_system_prompt=True), TASKS)
    assert {e["messages"][0]["content"] for e in overridden} == {GPARAMS["system_prompt"]}


def test_a_task_in_params_missing_from_the_task_file_is_an_error_naming_both(tmp_path):
    result = generate(tmp_path, TINY_BLOCKS, gparams(tasks=["SPEC", "SUMARY"]))
    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert message.startswith(str(tmp_path / "params.yaml")) and "SUMARY" in message and "tasks.yaml" in message
    assert not (tmp_path / "examples.jsonl").exists()


def test_only_the_tasks_in_params_are_generated():
    assert {e["task"] for e in run(TINY_BLOCKS, typed(tasks=["SPEC", "REFUSAL"]), TASKS)} == {"SPEC", "REFUSAL"}


def test_editing_a_phrasing_in_the_task_file_changes_the_questions_not_the_answers(tmp_path):
    data = yaml.safe_load(HEATING_TASKS.read_text(encoding="utf-8"))
    data["tasks"]["SPEC"]["questions"] = ["How much is the {what} on a {subject}?"]
    edited = tmp_path / "tasks.yaml"
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert_ok(generate(tmp_path, TINY_BLOCKS, gparams(tasks=["SPEC"]), edited))
    prompts = {e["messages"][1]["content"] for e in load_jsonl(tmp_path / "examples.jsonl")}
    assert "[SPEC] How much is the rated output on a CA-24C?" in prompts
    assert all(p.startswith("[SPEC] How much is the ") for p in prompts)


def test_no_domain_word_of_the_sample_corpus_is_left_in_the_generation_code():
    from pathlib import Path

    from finetune import generation

    words = ("Brenntal", "Calora", "Aquis", "model_code", "informal_names", "Symptom", "Specifications", "Wiring")
    for path in Path(generation.__file__).parent.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert [w for w in words if w in text] == [], path.name


def test_the_repository_task_file_parses_as_a_whole():
    data = yaml.safe_load(HEATING_TASKS.read_text(encoding="utf-8"))
    assert set(parse(data).tasks) >= set(repo_params()["generate"]["tasks"])


def test_the_same_record_in_two_files_becomes_one_example_and_is_counted(tmp_path):
    qa = next(b for b in TINY_BLOCKS if b["kind"] == "qa")
    copy = {
        **qa,
        "id": "another-file",
        "source": "domains/heating/raw/qa_copy.jsonl#line=1",
    }  # same conversation, other file
    result = generate(tmp_path, [*TINY_BLOCKS, copy], gparams())
    assert_ok(result)
    examples = load_jsonl(tmp_path / "examples.jsonl")
    assert not any(e["source"] == copy["source"] for e in examples)
    assert json.loads((tmp_path / "generate.json").read_text())["duplicates_merged"] >= 1


def test_a_long_answer_repeated_word_for_word_in_another_document_is_one_example(tmp_path):
    notice = "This board is certified for use in the EU and the UK under the radio equipment directive."
    boards = [
        block(f"ds/{n}.md#h={n}/Compliance", "section", f"{n} / Compliance", notice, [n, "Compliance"])
        for n in ("XB-100", "XB-200", "XB-300")
    ]
    result = generate(tmp_path, boards, gparams(tasks=["SECTION", "REFUSAL"]), tasks_file=CLI_TASKS)
    assert_ok(result)
    sections = [e for e in load_jsonl(tmp_path / "examples.jsonl") if e["task"] == "SECTION"]
    assert [e["source"].split("#")[0] for e in sections] == ["ds/XB-100.md"]  # the first document's
    assert json.loads((tmp_path / "generate.json").read_text())["boilerplate_merged"] == 2


def test_a_short_answer_repeats_as_a_fact_of_each_document_and_the_same_document_keeps_every_phrasing():
    def ex(source: str, question: str, answer: str, task: str = "TABLE") -> dict:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return example(task, source, source, messages, {})

    examples = [
        ex("ds/a.md#h=Supply", "Supply voltage of A?", "3.3 V"),
        ex("ds/b.md#h=Supply", "Supply voltage of B?", "3.3 V"),
        ex("ds/a.md#h=ESD", "ESD of A?", "Handle the board at an ESD-safe workstation only."),
        ex("ds/a.md#h=ESD", "Tell me about ESD of A.", "Handle the board at an ESD-safe workstation only."),
        ex("ds/b.md#h=ESD", "ESD of B?", "Handle the board  at an ESD-safe workstation ONLY."),
        ex("ds/b.md#h=ESD", "ESD of B?", "Handle the board at an ESD-safe workstation only.", task="SECTION"),
    ]
    kept, merged = merge_boilerplate(examples, min_words=5)
    assert merged == 1 and examples[4] not in kept  # another task's same answer is another example
    assert merge_boilerplate(examples, min_words=2)[1] == 2  # a lower knob takes "3.3 V" for boilerplate too


QUALITY_TASKS = """
tasks:
  NOTE:
    prefix: "[QA]"
    builder: section
    blocks: {kind: section}
    questions: ["What does the documentation say about {heading}?"]
    check: {name: min_words, words: 1}
quality:
  stopwords:
    en: [the, is, of, and, to, what, does]
    de: [der, die, das, ist, und, mit]
"""


def quality_blocks() -> list[dict]:
    def section(bid, doc, heading, text):
        return {"id": bid, "source": f"raw/{doc}.md#h={heading}", "kind": "section", "title": heading,
                "headings": [heading], "text": text}  # fmt: skip

    return [
        section("a", "pump", "Cleaning", "Rinse the filter of the pump under warm water and let it dry."),
        section("b", "pump", "Before you start", "Make sure of the following things before you start the pump:"),
        section("c", "fan", "Wartung", "Die Flügel werden mit einem trockenen Tuch gereinigt und das ist gut."),
    ]


def generate_with_quality(tmp_path, tasks_text=QUALITY_TASKS):
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(tasks_text)
    write_jsonl(tmp_path / "blocks.jsonl", quality_blocks())
    params = repo_params() | {"generate": gparams(tasks=["NOTE"])}
    args = ["--input", tmp_path / "blocks.jsonl", "--output", tmp_path / "examples.jsonl", "--tasks", tasks]
    args += ["--metrics", tmp_path / "generate.json", "--params", write_params(tmp_path / "params.yaml", params)]
    args += ["--quality", tmp_path / "quality.json", "--quality-examples", tmp_path / "quality_examples.json"]
    return invoke(cli, args)


def test_quality_counts_each_problem_flat_and_the_worst_examples_go_to_their_own_file(tmp_path):
    result = generate_with_quality(tmp_path)
    assert_ok(result)
    counts = json.loads((tmp_path / "quality.json").read_text())
    assert counts["examples"] == 3
    assert counts["dangling_lead_in"] == 1 and counts["mixed_language"] == 1 and counts["flagged"] == 2
    assert counts["ambiguous"] == 0 and counts["ambiguous_of"] == 3
    assert all(not isinstance(v, dict | list) for v in counts.values())  # flat: what `dvc metrics show` prints
    worst = json.loads((tmp_path / "quality_examples.json").read_text())
    assert [w["answer"] for w in worst["dangling_lead_in"]] == [quality_blocks()[1]["text"]]
    assert worst["ambiguous"] == []
    assert "quality: 2 of 3 examples flagged (dangling_lead_in 1, mixed_language 1)" in result.stderr


def test_without_a_second_language_in_the_task_file_mixed_language_checks_nothing(tmp_path):
    result = generate_with_quality(tmp_path, QUALITY_TASKS.split("quality:")[0])
    assert_ok(result)
    counts = json.loads((tmp_path / "quality.json").read_text())
    assert counts["mixed_language"] == 0 and counts["mixed_language_of"] == 0
    assert counts["dangling_lead_in"] == 1


def test_a_bad_quality_section_is_one_line_naming_the_file_line_and_key(tmp_path):
    result = generate_with_quality(tmp_path, QUALITY_TASKS.replace("stopwords:", "stopword:"))
    assert isinstance(result.exception, InputError)
    message = str(result.exception)
    assert "tasks.yaml:" in message and "quality.stopword: not a key here (did you mean stopwords?)" in message
    assert "\n" not in message


def test_an_optional_group_vanishes_when_empty_or_when_the_phrasing_says_its_value_already():
    from finetune.generation.builders import Item
    from finetune.generation.examples import question_text

    def ask(fields: dict) -> str:
        return question_text("What is {term} in {document} ({heading})?", Item(fields, ""), None, "here", "src")

    assert (
        ask({"term": "snapshot", "document": "skein", "heading": "Glossary"})
        == "What is snapshot in skein (Glossary)?"
    )
    assert ask({"term": "snapshot", "document": "skein", "heading": "Skein"}) == "What is snapshot in skein?"
    assert ask({"term": "snapshot", "document": "skein", "heading": ""}) == "What is snapshot in skein?"
    assert ask({"term": "it", "document": "Do I need it?", "heading": "FAQ"}) == "What is it in Do I need it (FAQ)?"
    # A name that starts with a mark keeps the space before it: "the .width", not "the.width".
    assert ask({"term": ".width", "document": "Page", "heading": ""}) == "What is .width in Page?"
