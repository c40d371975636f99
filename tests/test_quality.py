"""quality.measure: each count fires on the bad case it names and stays 0 on a sound one (fixtures written here)."""

from __future__ import annotations

import pytest

from finetune.generation.quality import PROBLEMS, Rules, measure

SYSTEM = {"role": "system", "content": "You answer from the documentation."}
# Tiny word lists of our own, as params would give them: the checks hold no words of any language.
RULES = Rules.from_mapping(
    {
        "stopwords": {"en": ["the", "is", "of", "and", "what", "to", "a"], "de": ["der", "die", "ist", "und", "ein"]},
        "instruction_words": {"en": ["run", "copy", "open", "set"]},
    }
)


def block(bid: str, source: str, kind: str, headings: list[str], text: str = "", **extra) -> dict:
    fields = {"id": bid, "source": source, "kind": kind, "title": " / ".join(headings), "headings": headings}
    return fields | {"text": text, **extra}


def ex(eid: str, bid: str, question: str, answer: str, task: str = "SECTION", source: str = "") -> dict:
    messages = [SYSTEM, {"role": "user", "content": f"[QA] {question}"}, {"role": "assistant", "content": answer}]
    return {"id": eid, "task": task, "source": source or f"raw/{bid}.md", "block_id": bid, "messages": messages}


def only(result: dict, problem: str) -> None:
    """`problem` fired, and no other check did."""
    assert result[problem] > 0, result
    assert [p for p in PROBLEMS if result[p] and p != problem] == [], result


PUMP = block("p", "raw/pump.md#h=Pump", "section", ["Pump", "Cleaning"], "Rinse the filter under warm water.")
FAN = block("f", "raw/fan.md#h=Fan", "section", ["Fan", "Cleaning"], "Wipe the blades with a dry cloth.")


def test_a_sound_corpus_counts_nothing():
    blocks = [PUMP, FAN]
    examples = [
        ex("1", "p", "How do I clean the Pump?", "Rinse the filter under warm water."),
        ex("2", "f", "How do I clean the Fan?", "Wipe the blades with a dry cloth."),
    ]
    result = measure(examples, blocks, RULES)
    assert {p: result[p] for p in PROBLEMS} == dict.fromkeys(PROBLEMS, 0)
    assert result["flagged"] == 0 and result["examples"] == 2
    assert result["worst"] == {p: [] for p in PROBLEMS}


def test_the_same_question_with_different_answers_is_ambiguous_whatever_its_prefix_case_or_end_mark():
    examples = [
        ex("1", "p", "How do I clean the Pump?", "Rinse the filter under warm water."),
        ex("2", "p", "how do I  clean the pump", "Empty the tank, then rinse the filter."),
        ex("3", "f", "How do I clean the Fan?", "Wipe the blades with a dry cloth."),
    ]
    result = measure(examples, [PUMP, FAN], RULES)
    only(result, "ambiguous")
    assert result["ambiguous"] == 2
    assert {w["id"] for w in result["worst"]["ambiguous"]} == {"1", "2"}


def test_the_same_question_after_different_turns_is_not_ambiguous():
    def turn(eid: str, before: str, answer: str) -> dict:
        e = ex(eid, "p", "And then?", answer)
        e["messages"][1:1] = [{"role": "user", "content": before}, {"role": "assistant", "content": "Open the lid."}]
        return e

    examples = [turn("1", "How do I clean the Pump?", "Rinse it."), turn("2", "How do I clean the Fan?", "Wipe it.")]
    assert measure(examples, [PUMP, FAN], RULES)["ambiguous"] == 0


def test_a_heading_of_two_documents_needs_its_document_named():
    examples = [
        ex("1", "p", "What should I know about Cleaning?", "Rinse the filter under warm water."),
        ex("2", "f", "What should I know about Cleaning of the fan?", "Wipe the blades with a dry cloth."),
    ]
    result = measure(examples, [PUMP, FAN], RULES)
    only(result, "unnamed_subject")
    assert (result["unnamed_subject"], result["unnamed_subject_of"]) == (1, 2)


def test_a_name_two_documents_share_does_not_name_either():
    pump2 = block("q", "raw/pump2.md#h=Pump", "section", ["Pump", "Cleaning"], "Empty the tank before cleaning.")
    examples = [ex("1", "p", "How do I clean the Pump?", "Rinse the filter under warm water.")]
    assert measure(examples, [PUMP, pump2], RULES)["unnamed_subject"] == 1


TOC = block(
    "t", "raw/book.pdf#page=2", "section", ["Contents"],
    "Introduction . . . . . . . 1\nInstalling . . . . . . . 4\nCleaning the filter . . . . . . 9\nFaults . . . . . 12",
)  # fmt: skip
UNDER_TOC = block("u", "raw/book.pdf#page=9", "section", ["Contents", "Cleaning the filter"], "Rinse it often.")


def test_a_table_of_contents_and_what_its_title_heads_are_toc_subjects():
    examples = [
        ex("1", "t", "What should I know about Contents?", TOC["text"]),
        ex("2", "u", "How do I clean the filter of the Contents?", "Rinse it often."),
    ]
    result = measure(examples, [TOC, UNDER_TOC], RULES)
    assert result["toc_subject"] == 2
    assert result["worst"]["toc_subject"][0]["id"] == "1"  # the contents page itself is the worst


def test_a_section_that_mentions_numbers_is_no_table_of_contents():
    prose = block("s", "raw/book.pdf#page=4", "section", ["Book", "Sizes"], "Sizes 1 to 4.\nWeights up to 12.\nAll 3.")
    examples = [ex("1", "s", "What sizes does the Book list?", "Sizes 1 to 4, weights up to 12.")]
    assert measure(examples, [prose], RULES)["toc_subject"] == 0


def test_a_page_number_as_heading_is_a_number_subject_and_an_option_is_not():
    page = block("n", "raw/book.pdf#page=3", "section", ["iv"], "The filter sits behind the front panel.")
    option = block("o", "raw/cli.md#h=--", "section", ["cli", "--"], "Ends the options of the command line.")
    examples = [
        ex("1", "n", "What should I know about iv?", "The filter sits behind the front panel."),
        ex("2", "o", "What does -- mean in cli?", "Ends the options of the command line."),
    ]
    result = measure(examples, [page, option], RULES)
    only(result, "number_subject")
    assert [w["id"] for w in result["worst"]["number_subject"]] == ["1"]


def test_an_answer_ending_on_a_lead_in_dangles():
    examples = [
        ex("1", "p", "How do I clean the Pump?", "Rinse the filter under warm water as follows:"),
        ex("2", "f", "How do I clean the Fan?", "Wipe the blades: dry cloth only."),
    ]
    result = measure(examples, [PUMP, FAN], RULES)
    only(result, "dangling_lead_in")
    assert result["dangling_lead_in"] == 1


CODE = block("c", "raw/cli.md#h=cli/Examples", "code", ["cli", "Examples"], code="cli sync --all", lead="Sync all.")


def test_code_with_no_sentence_around_it_is_bare_and_explained_code_is_not():
    examples = [
        ex("1", "c", "Can you give me an example for Examples (cli)?", "```bash\ncli sync --all\n```", "CODE"),
        ex("2", "c", "How do I sync every folder with cli?", "Run this:\n```bash\ncli sync --all\n```\nIt syncs all.", "CODE"),
        ex("3", "c", "Which command syncs all in cli?", "cli sync --all", "CODE"),  # unfenced, the block's code
    ]  # fmt: skip
    result = measure(examples, [CODE], RULES)
    only(result, "bare_code")
    assert (result["bare_code"], result["bare_code_of"]) == (2, 3)


def test_running_text_underlined_with_tildes_is_no_code():
    text = "Release notes\n~~~~~~~~~~~~~\nThis release fixes the filter timer and the pump."
    examples = [ex("1", "p", "What changed in the Pump release?", text)]
    assert measure(examples, [PUMP], RULES)["bare_code_of"] == 0


def test_a_lead_sentence_pasted_into_a_question_counts_unless_it_is_an_instruction():
    told = block(
        "l",
        "raw/cli.md#h=cli/Sync",
        "code",
        ["cli", "Sync"],
        code="cli sync",
        lead="Let's suppose your goal is a sync.",
    )
    asked = block(
        "m", "raw/cli.md#h=cli/Copy", "code", ["cli", "Copy"], code="cli cp a b", lead="Copy the store to a new place:"
    )
    examples = [
        ex("1", "l", "How do I let's suppose your goal is a sync (cli)?", "Run `cli sync` to sync the store.", "CODE"),
        ex("2", "m", "How do I copy the store to a new place (cli)?", "Run `cli cp a b` to copy it.", "CODE"),
    ]  # fmt: skip
    result = measure(examples, [told, asked], RULES)
    only(result, "pasted_lead_in")
    assert [w["id"] for w in result["worst"]["pasted_lead_in"]] == ["1"]


def test_an_option_answered_with_a_lower_case_fragment_is_a_fragment():
    opts = block("d", "raw/cli.md#h=cli/Options", "definitions", ["cli", "Options"], items=[])
    examples = [
        ex("1", "d", "What does --all do in cli?", "do not ignore entries starting with .", "OPTION"),
        ex("2", "d", "What does --dry do in cli?", "Shows what would change", "OPTION"),
        ex("3", "d", "What does --force do in cli?", "Overwrites links that exist.", "OPTION"),
        ex("4", "d", "What does --mode do in cli?", "`auto` colours the output only on a terminal.", "OPTION"),
    ]
    result = measure(examples, [opts], RULES)
    only(result, "fragment_answer")
    assert (result["fragment_answer"], result["fragment_answer_of"]) == (2, 4)


def test_a_numbered_list_that_is_not_instructions_is_no_procedure():
    features = block("a", "raw/cli.md#h=cli/Features", "list", ["cli", "Features"], items=[])
    howto = block("b", "raw/cli.md#h=cli/Setup", "list", ["cli", "Setup"], items=[])
    examples = [
        ex("1", "a", "What are the steps for features (cli)?", "1. Fast syncing of folders.\n2. Safe links always.", "STEPS"),
        ex("2", "b", "What are the steps for setup (cli)?", "1. Run cli init here.\n2. Copy the store over.", "STEPS"),
    ]  # fmt: skip
    result = measure(examples, [features, howto], RULES)
    only(result, "non_procedure_steps")
    assert [w["id"] for w in result["worst"]["non_procedure_steps"]] == ["1"]


def test_without_instruction_words_only_the_shape_of_the_steps_is_checked():
    listing = block("a", "raw/cli.md#h=cli/Files", "list", ["cli", "Files"], items=[])
    examples = [
        ex("1", "a", "What are the steps for files (cli)?", "1. Fast syncing of folders.\n2. Safe links always.", "STEPS"),
        ex("2", "a", "List the steps for files (cli).", "1. Introduction . . . 1\n2. Usage . . . 4", "STEPS"),
    ]  # fmt: skip
    result = measure(examples, [listing], Rules())
    assert result["non_procedure_steps"] == 1 and result["worst"]["non_procedure_steps"][0]["id"] == "2"


def test_the_same_long_answer_from_two_documents_is_boilerplate_and_a_shared_short_value_is_not():
    legal = "This manual may be copied under the terms of the licence."
    examples = [
        ex("1", "p", "What licence covers the Pump manual?", legal),
        ex("2", "f", "What licence covers the Fan manual?", legal),
        ex("3", "p", "What is the Pump's voltage?", "230 V", "TABLE"),
        ex("4", "f", "What is the Fan's voltage?", "230 V", "TABLE"),
    ]
    result = measure(examples, [PUMP, FAN], RULES)
    only(result, "boilerplate_repeat")
    assert result["boilerplate_repeat"] == 2


def test_a_question_in_one_language_answered_in_another_is_mixed():
    examples = [
        ex("1", "p", "What is the use of the Pump?", "Die Pumpe ist ein Teil der Anlage und fördert Wasser."),
        ex("2", "f", "What is the use of the Fan?", "The fan is a part of the unit and moves air."),
    ]
    result = measure(examples, [PUMP, FAN], RULES)
    only(result, "mixed_language")
    assert [w["id"] for w in result["worst"]["mixed_language"]] == ["1"]


def test_a_question_mixing_two_languages_is_mixed_and_without_word_lists_nothing_is():
    examples = [ex("1", "p", "What is the use of die Pumpe und der Filter?", "It pumps water.")]
    assert measure(examples, [PUMP], RULES)["mixed_language"] == 1
    assert measure(examples, [PUMP], Rules())["mixed_language"] == 0


def test_an_example_over_the_token_budget_is_too_long_only_when_a_budget_is_given():
    examples = [ex("1", "p", "How do I clean the Pump?", "Rinse the filter under warm water. " * 20)]
    assert measure(examples, [PUMP], Rules(max_tokens=200))["too_long"] == 1
    assert measure(examples, [PUMP], Rules(max_tokens=200, count_tokens=lambda s: len(s.split())))["too_long"] == 0
    assert measure(examples, [PUMP], Rules())["too_long_of"] == 0


def test_worst_shows_at_most_the_rule_s_number_most_severe_first_ties_in_file_order():
    examples = [ex(str(i), "p", f"How do I clean the Pump, {i}?", "Rinse it as follows:") for i in range(5)]
    result = measure(examples, [PUMP], Rules(worst=3))
    assert result["dangling_lead_in"] == 5
    assert [w["id"] for w in result["worst"]["dangling_lead_in"]] == ["0", "1", "2"]


def test_the_same_input_gives_the_same_result_and_rules_may_come_as_params_data():
    examples = [ex("1", "p", "What is the use of the Pump?", "Die Pumpe ist ein Teil der Anlage:")]
    as_data = {"stopwords": {"en": ["the", "of", "is"], "de": ["die", "ist", "ein", "der"]}, "max_tokens": 5}
    first = measure(examples, [PUMP], as_data)
    assert first == measure(list(examples), [dict(PUMP)], as_data)
    assert (first["mixed_language"], first["dangling_lead_in"], first["too_long"], first["flagged"]) == (1, 1, 1, 1)


def test_an_unknown_rule_is_refused():
    with pytest.raises(TypeError):
        Rules.from_mapping({"stop_words": {}})
