"""Languages (issue 19, item 7): a block in another language than the task file's questions is asked in its own
language where the task gives phrasings in it, else left out and counted; never a question that mixes two."""

from __future__ import annotations

import json

import pytest
import yaml

from finetune.documents.readers import markdown_blocks
from finetune.generation.examples import left_out_language, run
from finetune.generation.languages import detect, word_sets
from finetune.generation.taskfile import parse
from finetune.io import InputError
from tests.test_generate import generate, gparams, typed

# A datasheet half in English, half in German (written for this test).
BOARD = """# QT-7 carrier board

## Power input

The board is powered from the barrel jack or from the header. Keep the input below the limit of the regulator.

## Spannungsversorgung

Die Platine wird über die Hohlbuchse oder über die Stiftleiste versorgt. Die Eingangsspannung darf nicht über der
Grenze des Reglers liegen.
"""
# Function words as a task file gives them: the words are data, the code only counts them.
LANGUAGES = {
    "en": ["the", "and", "or", "of", "from", "is", "below"],
    "de": ["der", "die", "das", "und", "oder", "über"],
}
SECTION = {"prefix": "[Q]", "builder": "section", "blocks": {"kind": "section"}, "check": "nonempty"}
EN_Q = "What does the {document} manual say about {heading_lc}?"
DE_Q = "Was sagt das Handbuch der {document} über {heading}?"


def taskfile(**section) -> object:
    data = {"language": "en", "languages": LANGUAGES, "tasks": {"SECTION": SECTION | {"questions": [EN_Q]} | section}}
    return parse(data)


def blocks() -> list[dict]:
    return [b for b in markdown_blocks(BOARD, "qt7.md", 0) if b["kind"] == "section" and b["text"]]


def asked(tf) -> dict[str, str]:
    """heading -> the question asked about it."""
    examples = run(blocks(), typed(tasks=["SECTION"], phrasings_per_item=1), tf)
    return {e["messages"][-1]["content"].split()[1]: e["messages"][1]["content"] for e in examples}


def test_a_block_is_asked_in_its_own_language_where_the_task_has_phrasings_in_it():
    got = asked(taskfile(phrasings={"de": [DE_Q]}))
    assert got == {
        "board": "[Q] What does the QT-7 carrier board manual say about power input?",
        "Platine": "[Q] Was sagt das Handbuch der QT-7 carrier board über Spannungsversorgung?",
    }


def test_a_block_in_a_language_without_phrasings_is_left_out_and_counted():
    tf = taskfile()
    assert list(asked(tf)) == ["board"]  # no German question with an English frame
    assert left_out_language(blocks(), typed(tasks=["SECTION"]), tf) == 1


def test_generate_reports_the_blocks_left_out_for_their_language(tmp_path):
    tasks = tmp_path / "tasks.yaml"
    data = {"language": "en", "languages": LANGUAGES, "tasks": {"SECTION": SECTION | {"questions": [EN_Q]}}}
    tasks.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = generate(tmp_path, blocks(), gparams(tasks=["SECTION"]), tasks)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "generate.json").read_text())["left_out_language"] == 1
    assert "left out 1 blocks in a language" in result.stderr


def test_without_declared_languages_every_block_is_asked_with_the_plain_questions():
    tf = parse({"tasks": {"SECTION": SECTION | {"questions": [EN_Q]}}})
    assert set(asked(tf)) == {"board", "Platine"}  # the task files of before: no detection, nothing left out
    assert left_out_language(blocks(), typed(tasks=["SECTION"]), tf) == 0


def test_the_language_is_the_one_whose_function_words_the_text_uses_most():
    words = word_sets(LANGUAGES | {"nl": ["de", "het", "en", "van", "die"]})
    assert detect("Die Platine und der Regler", words) == "de"  # "die" is German and Dutch: it counts for neither
    assert detect("the board and the regulator", words) == "en"
    assert detect("QT-7 5 V 2 A", words) is None  # no function word: unknown, asked in the file's own language


def test_a_task_file_names_its_languages_consistently():
    with pytest.raises(InputError, match="tasks.yaml: language: name the language of `questions`"):
        parse({"languages": LANGUAGES, "tasks": {"SECTION": SECTION | {"questions": [EN_Q]}}})
    with pytest.raises(InputError, match=r"tasks\.SECTION\.phrasings\.fr: not another language of the file"):
        taskfile(phrasings={"fr": ["Que dit {heading}?"]})
