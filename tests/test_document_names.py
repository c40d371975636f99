"""Every document has a name of its own (front matter `title:`, HTML <title>, a first heading that is a title, else
its file name); a table of contents is no subject; a question about a heading that several documents share names its
document; and the same question with two answers never leaves generate: named, or dropped and counted."""

from __future__ import annotations

import json

from finetune.documents.corpus import run as extract
from finetune.documents.readers import html_blocks, markdown_blocks
from finetune.io import load_jsonl, write_jsonl
from stages.generate import cli
from tests.conftest import assert_ok, invoke, repo_params, write_params

NOT_TITLES = tuple(repo_params()["extract"]["not_titles"])
GENERIC_TASKS = "domains/cli_tool/tasks.yaml"

BOARD = """---
title: {name} motor board
layout: page
---
# Description

The {name} drives one brushed motor of up to {amps} A from a supply between 9 and 30 V, with a current limit.

## Wiring

Connect the motor to terminals M1 and M2 and the supply to terminals {plus} and GND before switching it on.
"""


def board(name: str, amps: int, plus: str) -> str:
    return BOARD.format(name=name, amps=amps, plus=plus)


def test_a_markdown_document_is_named_by_its_front_matter_title_not_its_first_heading():
    blocks = markdown_blocks(board("MB-10", 5, "V+"), "docs/mb10.md", 0, not_titles=NOT_TITLES)
    assert {b["document"] for b in blocks} == {"MB-10 motor board"}
    assert [b["headings"][-1] for b in blocks] == ["Description", "Wiring"]


def test_toml_front_matter_names_a_document_and_unreadable_front_matter_leaves_it_to_the_heading():
    text = "The valve closes within two seconds of a power failure and stays closed until reset."
    toml = markdown_blocks(f'+++\ntitle = "Valve V2 guide"\n+++\n# Safety\n\n{text}\n', "v2.md", 0)
    broken = markdown_blocks(f"---\ntitle: [unclosed\n---\n# Valve V3 guide\n\n{text}\n", "v3.md", 0)
    assert [b["document"] for b in toml + broken] == ["Valve V2 guide", "Valve V3 guide"]


def test_an_html_document_is_named_by_its_title_element():
    html = "<html><head><title>Pump controller P4 manual</title></head><body><h1>Overview</h1>"
    html += "<p>The P4 starts the pump when the pressure falls below the set point for two seconds.</p></body></html>"
    [section] = html_blocks(html, "p4.html", 0, not_titles=NOT_TITLES)
    assert section["document"] == "Pump controller P4 manual"
    assert "Pump controller" not in section["text"]


def test_a_first_heading_names_the_document_unless_it_is_one_of_the_not_titles():
    text = "The valve closes within two seconds of a power failure and stays closed until reset."
    titled = markdown_blocks(f"# Valve V2 guide\n\n## Safety\n\n{text}\n", "v2.md", 0, not_titles=NOT_TITLES)
    contents = markdown_blocks(f"# Contents\n\n## Safety\n\n{text}\n", "v2-guide.md", 0, not_titles=NOT_TITLES)
    assert [b["document"] for b in titled] == ["Valve V2 guide"]
    assert [b["document"] for b in contents] == ["v2-guide"]


def test_a_first_heading_with_others_at_its_level_is_a_section_not_the_document_s_title():
    # A README that opens on a notice heading, then its real sections at the same level (#19: "CONTRIBUTIONS ONLY"
    # named a whole package's README, and every question about it).
    text = "The valve closes within two seconds of a power failure and stays closed until reset."
    doc = f"# Maintainers wanted\n\n{text}\n\n# Valve V2 guide\n\n## Safety\n\n{text} Twice.\n"
    assert {b["document"] for b in markdown_blocks(doc, "valve-v2.md", 0, not_titles=NOT_TITLES)} == {"valve-v2"}
    # A title over sections one level down still names it.
    doc = f"# Valve V2 guide\n\n## Safety\n\n{text}\n\n## Wiring\n\n{text} Twice.\n"
    assert {b["document"] for b in markdown_blocks(doc, "valve-v2.md", 0, not_titles=NOT_TITLES)} == {"Valve V2 guide"}


def test_a_title_element_that_is_one_of_the_not_titles_leaves_the_name_to_the_heading():
    html = "<title>Contents</title><h1>Pump P4</h1><p>The P4 starts the pump when the pressure falls too low.</p>"
    assert [b["document"] for b in html_blocks(html, "p4.html", 0, not_titles=NOT_TITLES)] == ["Pump P4"]


def test_extract_reads_the_not_titles_it_is_given(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "guide.md").write_text("# Summary\n\n## Use\n\nPress the red button twice to reset.\n")
    assert [b["document"] for b in extract(tmp_path / "raw", 0)[0]] == ["Summary"]
    assert [b["document"] for b in extract(tmp_path / "raw", 0, not_titles=("summary",))[0]] == ["guide"]


def test_a_table_of_contents_gives_no_block_whether_linked_or_with_page_numbers():
    body = "\n\n".join(f"## {h}\n\nThe {h.lower()} part of this manual explains what to do and when." for h in
                       ("Installation", "Wiring", "Maintenance"))  # fmt: skip
    linked = "# Manual\n\n## Contents\n\n- [Installation](#installation)\n- [Wiring](#wiring)\n"
    linked += "- [Maintenance](#maintenance)\n\n" + body
    printed = "# Manual\n\n## Index\n\nInstallation ........ 3\n\nWiring ........ 5\n\nService plan ........ 9\n\n"
    for text in (linked, printed + body):
        blocks = markdown_blocks(text, "manual.md", 0, not_titles=NOT_TITLES)
        assert [b["headings"][-1] for b in blocks] == ["Installation", "Wiring", "Maintenance"]


def test_a_list_of_a_few_headings_words_among_prose_is_still_content():
    text = "# Manual\n\n## Parts\n\n- Wiring loom with four plugs\n- Pump\n- Manual\n\n## Pump\n\nIt pumps water."
    assert "Parts" in [b["headings"][-1] for b in markdown_blocks(text, "m.md", 0)]


def generate_examples(tmp_path, blocks, **changes) -> tuple[list[dict], dict]:
    """(examples, generate's metrics) of the SECTION task of the generic task file, one phrasing an item."""
    params = repo_params()
    params["generate"] |= {"tasks": ["SECTION"], "phrasings_per_item": 1, **changes}
    write_jsonl(tmp_path / "blocks.jsonl", blocks)
    args = ["--input", tmp_path / "blocks.jsonl", "--output", tmp_path / "examples.jsonl", "--tasks", GENERIC_TASKS]
    args += ["--metrics", tmp_path / "generate.json", "--params", write_params(tmp_path / "params.yaml", params)]
    assert_ok(invoke(cli, args))
    return load_jsonl(tmp_path / "examples.jsonl"), json.loads((tmp_path / "generate.json").read_text())


def generate(tmp_path, blocks, **changes) -> tuple[list[str], dict]:
    examples, metrics = generate_examples(tmp_path, blocks, **changes)
    return [e["messages"][-2]["content"] for e in examples], metrics


def two_boards():
    return markdown_blocks(board("MB-10", 5, "V+"), "raw/mb10.md", 0) + markdown_blocks(
        board("MB-20", 12, "VIN"), "raw/mb20.md", 0
    )


def test_questions_about_headings_two_documents_share_name_each_document(tmp_path):
    questions, metrics = generate(tmp_path, two_boards(), seed=3)
    assert len(questions) == len(set(questions)) == 4
    assert sum("(MB-10 motor board)?" in q for q in questions) == 2
    assert sum("(MB-20 motor board)?" in q for q in questions) == 2
    assert metrics["named_document"] == 4 and metrics["dropped_ambiguous"] == 0


def test_the_naming_pattern_comes_from_params(tmp_path):
    questions, _ = generate(tmp_path, two_boards(), name_document="{question} for the {document}")
    assert all(q.endswith(("for the MB-10 motor board?", "for the MB-20 motor board?")) for q in questions)


def test_a_heading_only_one_document_has_is_asked_without_its_document_under_its_parent(tmp_path):
    questions, _ = generate(tmp_path, markdown_blocks(board("MB-10", 5, "V+"), "raw/mb10.md", 0))
    wiring = [q for q in questions if "Wiring" in q]
    assert len(questions) == 2 and len(wiring) == 1 and "MB-10 motor board" not in wiring[0]


def test_a_section_at_a_document_s_top_names_its_document(tmp_path):
    # "Can you explain Abstract?" (#19, quality3's read of /usr/share/doc manuals): a top section has no parent to
    # say whose it is, so its question names the document even when no other document has the heading.
    questions, metrics = generate(tmp_path, markdown_blocks(board("MB-10", 5, "V+"), "raw/mb10.md", 0))
    description = [q for q in questions if "Description" in q and "Wiring" not in q]
    assert len(description) == 1 and description[0].endswith("(MB-10 motor board)?")
    assert metrics["named_document"] == 1
    # A section that is the document's own title heading needs no name twice.
    titled = "# Pump P4\n\nThe pump needs a 16 A fuse and a separate earth lead to start reliably.\n"
    questions, metrics = generate(tmp_path, markdown_blocks(titled, "raw/p4.md", 0))
    assert questions and metrics["named_document"] == 0


def test_the_same_question_with_different_answers_is_dropped_and_counted(tmp_path):
    # Two sections of one document under one heading path: naming the document cannot tell them apart.
    text = "# Pump P4\n\n## Setup\n\nThe pump needs a 16 A fuse and a separate earth lead to start reliably.\n\n"
    text += "## Setup\n\nThe pump must stand level on a concrete base, never on a wooden floor or on carpet.\n\n"
    text += "## Care\n\nClean the inlet strainer every month and after every dry run of the pump.\n"
    questions, metrics = generate(tmp_path, markdown_blocks(text, "raw/p4.md", 0), seed=1, phrasings_per_item=3)
    assert questions and not any("Setup" in q for q in questions)
    assert all("Care" in q for q in questions)
    assert metrics["dropped_ambiguous"] == 6


def three_documents() -> list[dict]:
    docs = {
        "raw/quarry.md": "---\ntitle: Quarry CLI reference\n---\n# Commands\n\n## Staging\n\n"
        "Stage a file with the add command; it is sent on the next push to every remote.\n\n"
        "## quarry add\n\nAdds a file to the stage, which the next push sends to every remote it knows.\n",
        "raw/mb10.md": "---\ntitle: MB-10 motor board\n---\n# Power\n\n## Wiring\n\n"
        "Connect the supply to V+ and ground; the board takes five volts at most on its input.\n",
    }
    return [b for path, text in docs.items() for b in markdown_blocks(text, path, 0)]


def test_with_name_documents_all_every_question_of_several_documents_names_its_document(tmp_path):
    # "Can you explain Staging (Commands)?" says not which of the domain's documents it means, shared heading or not.
    questions, metrics = generate(tmp_path, three_documents(), name_documents="all")
    assert next(q for q in questions if "Staging" in q).endswith("(Quarry CLI reference)?")
    assert next(q for q in questions if "Wiring" in q).endswith("(MB-10 motor board)?")
    # The product's own word (its name's first word, which no other document's name starts with) names it already.
    assert "Quarry CLI reference" not in next(q for q in questions if "quarry add" in q)
    assert metrics["named_document"] == 2


def test_with_name_documents_shared_only_shared_headings_name_their_document(tmp_path):
    questions, metrics = generate(tmp_path, three_documents(), name_documents="shared")
    assert not [q for q in questions if "Quarry CLI reference" in q or "MB-10 motor board" in q]
    assert metrics["named_document"] == 0


def test_a_short_document_name_inside_another_word_does_not_count_as_naming_it(tmp_path):
    # "What should I know about DESCRIPTION?" holds "ul" inside "should": the man page ul was never named.
    text = "---\ntitle: {0}\n---\n# DESCRIPTION\n\nThe {0} command reads the named files and writes them to the terminal.\n"
    blocks = [b for name in ("ul", "ca") for b in markdown_blocks(text.format(name), f"raw/{name}.md", 0)]
    questions, metrics = generate(tmp_path, blocks, phrasings_per_item=3)  # every phrasing, "should" and "Can" too
    assert sorted(q[q.rindex("(") :] for q in questions) == ["(ca)?"] * 3 + ["(ul)?"] * 3
    assert metrics["named_document"] == 6
