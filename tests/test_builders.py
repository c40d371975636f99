"""The builders read any corpus by structure (block kinds of finetune/schema.py), with domain words only in the task
file: section Q&A from the heading path, table Q&A for any table, steps only from lists that are procedures,
definitions and options, code examples, every assistant turn of a conversation."""

from __future__ import annotations

import pytest
import yaml

from finetune.documents.sections import block
from finetune.generation.builders import (
    clean,
    code,
    code_sections,
    conversation,
    definitions,
    row,
    section,
    steps,
    table,
)
from finetune.generation.examples import run
from finetune.generation.history import skipped
from finetune.generation.taskfile import load, parse
from finetune.io import InputError
from tests.conftest import HEATING_TASKS, repo_params, typed

TASKS = load(HEATING_TASKS)  # the heating domain's task file, unedited
CLI = ["Quarry CLI reference", "quarry add {#add}"]
BOARD = "XB-200 sensor board"


def b(source: str, kind: str, headings: list[str], text: str = "…", **extra) -> dict:
    return block(source, kind, " / ".join(headings), text, headings=headings, **extra)


def task(builder: str, **spec) -> object:
    """One task of a task file written for the test."""
    spec = {"prefix": "[T]", "builder": builder, "questions": ["{heading}?"], "check": "nonempty"} | spec
    spec.setdefault("blocks", {"kind": ["section", "list", "table", "row", "definitions", "code", "qa"]})
    return parse({"tasks": {"T": spec}}).tasks["T"]


SECTION = b(
    "docs/add.md#h=quarry add",
    "section",
    CLI,
    "`quarry add` stages files for the next snapshot. Paths are resolved from the project root.",
    items=[],
)
OPTIONS = b(
    "docs/add.md#h=quarry add/Options",
    "definitions",
    [*CLI, "Options"],
    items=[
        {"term": "`--force`", "definition": "Add files even when they match an ignore rule."},
        {"term": "`-n, --dry-run`", "definition": "Show what would be added without changing anything."},
    ],
)
GLOSSARY = b(
    "docs/glossary.md#h=Glossary",
    "definitions",
    ["Quarry CLI reference", "Glossary"],
    items=[{"term": "snapshot", "definition": "A saved state of every tracked file."}],
)
EXAMPLE = b(
    "docs/add.md#h=quarry add/Examples",
    "code",
    [*CLI, "Examples"],
    code='for f in data/*; do\n    quarry add "$f" --force\ndone',
    language="sh",
    lead="Stage every file of a folder, ignored files included:",
)
BARE_CODE = b("docs/add.md#h=quarry add/More", "code", [*CLI, "More"], code="quarry add .", language="", lead="")
INSTALL = b(
    "docs/install.md#h=Install/From source",
    "list",
    ["Quarry CLI reference", "Install", "From source"],
    items=["Clone the repository with git.", "Run make install in the clone.", "Check the version with quarry -V."],
    lead="To build from source:",
)
PLATFORMS = b(
    "docs/install.md#h=Install/Platforms",
    "list",
    ["Quarry CLI reference", "Install", "Platforms"],
    items=["Linux", "macOS", "Windows"],
    lead="",
)
ELECTRICAL = b(
    "ds/xb200.md#h=Electrical characteristics",
    "table",
    [BOARD, "Electrical characteristics"],
    columns=["Symbol", "Parameter", "Min", "Typ", "Max", "Unit", "Conditions"],
    rows=[
        {"Symbol": "VDD", "Parameter": "Supply voltage", "Min": "3.0", "Typ": "3.3", "Max": "3.6", "Unit": "V",
         "Conditions": ""},
        {"Symbol": "IDD", "Parameter": "Supply current", "Min": "—", "Typ": "12", "Max": "20", "Unit": "mA",
         "Conditions": "VDD = 3.3 V"},
    ],
)  # fmt: skip
PINS = b(
    "ds/xb200.md#h=Pinout",
    "table",
    [BOARD, "Pinout"],
    columns=["Pin", "Name", "Type", "Description"],
    rows=[{"Pin": "1", "Name": "VDD", "Type": "Power", "Description": "Supply input, 3.0 to 3.6 V"}],
)
RATINGS = b(
    "ds/xb200.md#h=Absolute maximum ratings",
    "table",
    [BOARD, "Absolute maximum ratings"],
    columns=["Rating", "Value (V)"],
    rows=[{"Rating": "Input voltage on any pin", "Value (V)": "4.0"}],
)
CHAT = b(
    "data/chat.jsonl#line=3",
    "qa",
    ["How do I undo quarry add?"],
    messages=[
        {"role": "system", "content": "You are Quarry's helper."},
        {"role": "user", "content": "How do I undo quarry add?"},
        {"role": "assistant", "content": "Run quarry reset with the path."},
        {"role": "user", "content": "And for every file?"},
        {"role": "assistant", "content": "Run quarry reset without a path."},
    ],
)
CORPUS = [SECTION, OPTIONS, GLOSSARY, EXAMPLE, BARE_CODE, INSTALL, PLATFORMS, ELECTRICAL, PINS, RATINGS, CHAT]


def qa(examples: list[dict], name: str) -> dict[str, str]:
    return {e["messages"][-2]["content"]: e["messages"][-1]["content"] for e in examples if e["task"] == name}


@pytest.fixture(scope="module")
def generated() -> list[dict]:
    """heating's task file, every task of it listed, on a CLI reference and a datasheet, every phrasing."""
    params = typed(repo_params()).generate.model_copy(update={"phrasings_per_item": 3, "tasks": list(TASKS.tasks)})
    return run(CORPUS, params, TASKS)


def test_subjects_lose_anchors_links_and_markup():
    assert clean("quarry add {#add}") == "quarry add"
    assert clean("See [the `--force` flag](#force) **now**") == "See the --force flag now"


def test_a_new_corpus_gets_every_generic_task_with_no_edit(generated):
    made = {e["task"] for e in generated}
    assert {"SECTION", "STEPS", "TABLE", "DEFINITION", "OPTION", "CODE", "QA", "REFUSAL"} <= made
    for e in generated:
        question = e["messages"][-2]["content"]
        assert not any(s in question for s in ("{", "}", "()", "  ", " ?", "{#")), question


def test_option_questions_ask_what_an_option_of_the_command_does(generated):
    options = qa(generated, "OPTION")
    assert options["[QA] What does the --force option of `quarry add` do?"] == OPTIONS["items"][0]["definition"]
    assert len(options) == 6  # two options x three phrasings
    assert "snapshot" not in " ".join(options)  # a glossary term is a DEFINITION, not an option


def test_glossary_terms_become_definition_questions(generated):
    assert set(qa(generated, "DEFINITION").values()) == {"A saved state of every tracked file."}


def test_datasheet_tables_ask_row_by_column_with_qualifier_and_unit(generated):
    tables = qa(generated, "TABLE")
    asked = {q: a for q, a in tables.items() if "typical supply voltage (VDD)" in q}
    assert asked and set(asked.values()) == {"Typ 3.3 V"}
    assert any("What is the maximum supply current (IDD) of the XB-200 sensor board" in q for q in tables)
    assert not any("minimum supply current" in q for q in tables)  # the "—" cell is no value
    assert not any("conditions" in q.lower() for q in tables)  # the Conditions column is skipped (task file)
    assert "4.0 V" in tables.values()  # the unit from the header "Value (V)"
    assert {a for q, a in tables.items() if "description of VDD" in q} == {"Supply input, 3.0 to 3.6 V"}


def test_only_lists_that_are_procedures_become_steps(generated):
    answers = set(qa(generated, "STEPS").values())
    assert answers == {"\n".join(f"{n}. {s}" for n, s in enumerate(INSTALL["items"], start=1))}


def test_code_examples_are_asked_from_the_heading_and_answered_with_their_lead_and_fenced_code(generated):
    code_qa = qa(generated, "CODE")
    code_text = '```sh\nfor f in data/*; do\n    quarry add "$f" --force\ndone\n```'
    answer = f"Stage every file of a folder, ignored files included:\n{code_text}"
    assert code_qa == {
        "[EXAMPLE] Can you give me an example for Examples (quarry add)?": answer,
        "[EXAMPLE] Show me an example for Examples (quarry add).": answer,
    }  # the lead is in no question, and BARE_CODE (no lead: nothing says what it does) is in no example


def test_a_sections_code_blocks_are_one_example_and_a_heading_that_is_a_task_asks_how():
    section_code = [
        b("docs/link.md#h=Add a symlink", "code", ["skein", "Add a symlink"], code="skein link a b", lead="Link it:"),
        b("docs/link.md#h=Add a symlink", "code", ["skein", "Add a symlink"], code="skein link -r d", lead=""),
        b("docs/link.md#h=Other", "code", ["skein", "Other"], code="skein ls", language="sh", lead="List them."),
    ]
    code_task = task("code", code={"lead": True, "instruction_words": ["add", "run"]})
    items = [i for blk in code_sections(section_code) for i in code(blk, code_task)]
    assert [i.answer for i in items] == [
        "Link it:\n```\nskein link a b\n```\n\n```\nskein link -r d\n```",
        "List them.\n```sh\nskein ls\n```",
    ]
    assert [i.fields["howto_lc"] for i in items] == ["add a symlink", ""]  # "Other" is no task
    bare = b("docs/link.md#h=Synopsis", "code", ["skein", "Synopsis"], code="skein link SRC DST", lead="")
    assert code(bare, code_task) == [] and len(code(bare, task("code"))) == 1  # code.lead: false keeps it


def test_every_assistant_turn_of_a_conversation_is_an_example_with_its_history(generated):
    chats = [e for e in generated if e["task"] == "QA"]
    assert [[m["role"] for m in e["messages"]] for e in chats] == [
        ["system", "user", "assistant"],
        ["system", "user", "assistant", "user", "assistant"],
    ]
    assert {e["messages"][0]["content"] for e in chats} == {"You are Quarry's helper."}
    assert chats[1]["messages"][1:3] == [
        {"role": "user", "content": "[QA] How do I undo quarry add?"},
        {"role": "assistant", "content": "Run quarry reset with the path."},
    ]
    assert chats[1]["messages"][-1]["content"] == "Run quarry reset without a path."
    assert len({e["id"] for e in chats}) == 2 and {e["source"] for e in chats} == {CHAT["source"]}


def test_section_items_carry_heading_fields_and_the_text():
    (item,) = section(SECTION, task("section"))
    assert item.fields["heading"] == "quarry add" and item.fields["document"] == "Quarry CLI reference"
    assert item.answer == SECTION["text"] and item.fields["parent"] == "Quarry CLI reference"


def test_a_heading_pattern_selects_blocks_and_its_named_groups_become_fields():
    t = task("section", blocks={"kind": "section", "title": r"^(?P<product>\w+) CLI"})
    (item,) = section(SECTION, t)
    assert item.fields["product"] == "Quarry" and item.fields["product_lc"] == "quarry"
    assert section(SECTION, task("section", blocks={"kind": "section", "heading": "^Options$"})) == []


def test_steps_thresholds_come_from_the_task_file():
    assert steps(PLATFORMS, task("steps")) == []  # one-word items are no instructions
    assert len(steps(PLATFORMS, task("steps", steps={"min_words": 1}))) == 1
    assert steps(PLATFORMS, task("steps", steps={"min_words": 1, "lead": True})) == []  # it has no lead
    assert steps(INSTALL, task("steps", steps={"min_items": 4})) == []


def test_table_options_choose_key_aside_unit_and_qualifiers():
    t = task(
        "table", table={"key": ["Parameter"], "aside": ["Symbol"], "unit": ["Unit"], "qualifiers": {"typ": "typ."}}
    )
    items = table(ELECTRICAL, t)
    whats = {i.fields["what"]: i.answer for i in items}
    assert whats["typ. supply voltage (VDD)"] == "Typ 3.3 V"
    assert whats["min of Supply voltage (VDD)"] == "3.0 V"  # not a qualifier here: an attribute of the row
    assert "conditions of Supply current (IDD)" in whats  # not skipped unless the task says so
    assert {i.meta["unit"] for i in items} == {"V", "mA", ""}


def test_a_bracket_naming_what_another_column_measures_is_no_unit():
    columns = ["Library", "Median latency (milliseconds)", "Relative (latency)"]
    rows = [{"Library": "json", "Median latency (milliseconds)": "18", "Relative (latency)": "11.8"}]
    grid = b("r.md#h=Latency", "table", ["orjson", "Latency"], columns=columns, rows=rows)
    assert {i.fields["column"]: i.answer for i in table(grid, task("table"))} == {
        "median latency": "18 milliseconds",
        "relative (latency)": "11.8",
    }


def test_a_column_named_by_no_word_is_not_asked():
    # A PDF's aligned figures taken for a header: "what is the 0 of 168?" asks nothing.
    rows = [{"Field": "curB", "0": "528", "168": "41", "Total": "770"}]
    grid = b("m.pdf#page=43", "table", ["Manual", "Trees"], columns=["Field", "0", "168", "Total"], rows=rows)
    assert [i.fields["what"] for i in table(grid, task("table"))] == ["curB"]


def test_a_row_template_fans_out_over_a_separated_column_and_skips_rows_missing_a_required_cell():
    catalog = b(
        "data/catalog.csv#row=2",
        "row",
        ["catalog"],
        columns=["Code", "Full name", "Aliases"],
        rows=[{"Code": "XB-200", "Full name": "XB-200 sensor board", "Aliases": "xb200 | the 200 board |"}],
    )
    t = task(
        "row",
        blocks={"kind": "row", "columns": ["Code", "Full name"]},
        each={"column": "Aliases", "separator": "|"},
        answer="{Full_name} ({Code})",
    )
    assert [i.fields["Aliases"] for i in row(catalog, t)] == ["xb200", "the 200 board"]
    empty = dict(catalog, rows=[{"Code": "", "Full name": "x", "Aliases": "y"}])
    assert row(empty, t) == []


def test_definitions_terms_filter_and_code_and_conversation_builders_on_their_own():
    assert [i.fields["term"] for i in definitions(OPTIONS, task("definitions", terms="^-"))] == [
        "--force",
        "-n, --dry-run",
    ]
    assert definitions(GLOSSARY, task("definitions", terms="^-")) == []
    (item,) = code(EXAMPLE, task("code"))
    assert item.fields["language"] == "sh" and "    quarry add" in item.fields["code"]
    assert [i.answer for i in conversation(CHAT, task("conversation"))] == [
        "Run quarry reset with the path.",
        "Run quarry reset without a path.",
    ]


def test_a_placeholder_that_is_no_field_names_the_task_file_key_and_the_block():
    tasks = parse(
        {
            "tasks": {
                "T": {
                    "prefix": "[T]",
                    "builder": "section",
                    "blocks": {"kind": "section"},
                    "questions": ["What about {product}?"],
                    "check": "nonempty",
                }
            }
        },
        "my_tasks.yaml",
    )
    params = typed(repo_params()).generate.model_copy(update={"tasks": ["T"]})
    with pytest.raises(InputError) as e:
        run([SECTION], params, tasks)
    message = str(e.value)
    assert message.startswith(
        "my_tasks.yaml: tasks.T.questions[0]: {product} is not a field of docs/add.md#h=quarry add"
    )
    assert "heading" in message


def test_generic_tasks_leave_a_heading_path_that_a_specific_task_reads():
    spec = {
        "prefix": "[PINS]",
        "builder": "row",
        "blocks": {"kind": "table", "columns": ["Pin", "Name"]},
        "questions": ["Which pin is {Name}?"],
        "answer": "Pin {Pin}",
        "check": "nonempty",
    }
    data = yaml.safe_load(HEATING_TASKS.read_text(encoding="utf-8"))
    tasks = parse({"tasks": {**data["tasks"], "PINS": spec}})
    params = typed(repo_params()).generate.model_copy(update={"tasks": ["PINS", "TABLE"]})
    examples = run([PINS, RATINGS], params, tasks)
    assert {(e["task"], e["source"]) for e in examples} == {("PINS", PINS["source"]), ("TABLE", RATINGS["source"])}


def test_the_parts_of_a_long_section_are_asked_by_what_they_say_not_by_number(generated):
    texts = [
        "Paths are resolved from the project root, and ignored files are skipped unless forced to be added.",
        "Ignored files are listed with --ignored, so that a forced add is a choice and never an accident.",
    ]
    parts = [
        dict(b(f"docs/add.md#h=Usage#part={n}", "section", [*CLI, "Usage"], t), items=[], part=label)
        for n, (t, label) in enumerate(zip(texts, ["", "Ignored files are listed with --ignored"]), 1)
    ]
    params = typed(repo_params()).generate.model_copy(update={"tasks": ["SECTION"], "phrasings_per_item": 3})
    questions = [e["messages"][1]["content"] for e in run(parts, params, TASKS)]
    assert len(questions) == len(set(questions)) == 6
    assert sum(q.endswith('("Ignored files are listed with --ignored")?') for q in questions) == 3
    assert not [q for q in questions if "part" in q or '("")' in q or "()" in q]
    assert not [e for e in generated if "part" in e["messages"][-2]["content"] and e["task"] == "SECTION"]


def test_a_numbered_list_is_steps_only_when_its_items_start_with_the_task_files_instruction_words():
    notes = b(
        "docs/notes.md#h=Notes",
        "list",
        ["Quarry CLI reference", "Notes"],
        items=["Older snapshots are kept for a week.", "Ignored files are never staged.", "Links count as files."],
    )
    options = {"min_items": 2, "min_words": 3, "instruction_words": ["clone", "run", "check"]}
    steps_task = task("steps", steps=options)
    assert steps(notes, steps_task) == []
    assert [i.points for i in steps(INSTALL, steps_task)] == [tuple(INSTALL["items"])]
    # Words of another language: the same procedure is none of its steps.
    assert steps(INSTALL, task("steps", steps=options | {"instruction_words": ["klonen", "führen"]})) == []
    # No word list: shape alone decides, as before.
    assert steps(notes, task("steps", steps={"min_items": 2, "min_words": 3})) != []


def test_a_definition_answer_is_a_sentence_and_a_label_is_no_term():
    notes = b(
        "docs/add.md#h=quarry add/Options",
        "definitions",
        [*CLI, "Options"],
        items=[
            {"term": "`--force`", "definition": "add files even when they match an ignore rule"},
            {"term": "`--color`", "definition": "`auto` colours the output on a terminal"},
            {"term": "NOTE", "definition": "Back up the store first."},
            {"term": "`--from`", "definition": "read the paths from a file such as:"},
            {"term": "Source", "definition": "https://example.invalid/quarry"},
        ],
    )
    items = definitions(notes, task("definitions", labels=["Note", "Warning"]))
    assert [i.fields["term"] for i in items] == ["--force", "--color", "--from", "Source"]
    assert [i.answer for i in items] == [
        "Add files even when they match an ignore rule.",
        "`auto` colours the output on a terminal.",  # a literal keeps its case
        "Read the paths from a file such as:",  # what it led to is missing: no full stop hides that
        "https://example.invalid/quarry",  # one literal: a full stop would only change it
    ]
    assert items[0].fields["definition_lc"] == "add files even when they match an ignore rule"
    # Without the task file's labels, NOTE is a term like any other.
    assert "NOTE" in [i.fields["term"] for i in definitions(notes, task("definitions"))]


def test_a_sections_later_code_blocks_join_its_code_answer_only_within_code_max_chars():
    long_code = "\n".join(f"skein link file{n} target{n}" for n in range(30))
    section_code = [
        b("docs/l.md#h=Links", "code", ["skein", "Links"], code="skein link a b", lead="Link one file:"),
        b("docs/l.md#h=Links", "code", ["skein", "Links"], code=long_code, lead="Link many:"),
    ]
    (merged,) = code_sections(section_code)
    (item,) = code(merged, task("code", code={"max_chars": 200}))
    assert item.answer == "Link one file:\n```\nskein link a b\n```"  # the second would pass 200 characters
    (whole,) = code(merged, task("code"))
    assert whole.answer.endswith(f"Link many:\n```\n{long_code}\n```")  # 0: no limit


def test_an_example_led_by_one_instruction_is_asked_as_that_goal_and_the_rest_from_the_heading():
    section_code = [
        b("docs/i.md#h=Examples", "code", ["skein init", "Examples"], code="skein init", lead="Create a store:"),
        b("docs/i.md#h=Examples", "code", ["skein init", "Examples"], code="skein init --git", lead="Add git too:"),
        b("docs/i.md#h=Examples", "code", ["skein init", "Examples"], code="ls ~/s", lead="The store is a folder:"),
        # two sentences, and a statement: no single goal, so it stays with the section's other examples
        b("docs/i.md#h=Examples", "code", ["skein init", "Examples"], code="skein init -f", lead="Run it. Twice:"),
        b("docs/i.md#h=Examples", "code", ["skein init", "Examples"], code="skein x", lead="Let's say you run it:"),
    ]
    code_task = task("code", code={"lead": True, "instruction_words": ["create", "add", "run", "let"]})
    (merged,) = code_sections(section_code)
    items = code(merged, code_task)
    assert [(i.fields["heading"], i.fields["howto_lc"], i.fields["parent"]) for i in items] == [
        ("Create a store", "create a store", "skein init"),
        ("Add git too", "add git too", "skein init"),
        ("Examples", "", "skein init"),
    ]
    assert items[0].answer == "Create a store:\n```\nskein init\n```"
    assert items[2].answer.startswith("The store is a folder:\n```\nls ~/s\n```\n\nRun it. Twice:\n```\nskein init -f")
    assert items[2].answer.endswith("Let's say you run it:\n```\nskein x\n```")
    assert len(code(merged, task("code", code={"lead": True}))) == 1  # no instruction words: one item, as before


def test_changelog_people_and_version_sections_are_skipped_by_the_words_given_or_a_version_number():
    words = ["Changelog", "Release notes", "Contributors"]
    assert skipped(b("r.md#h=Changelog/Fixed", "section", ["tool", "Changelog", "Fixed"]), words)
    assert skipped(b("r.md#h=Release notes 2", "section", ["tool", "release notes for 2.0"]), words)  # any case
    assert skipped(b("r.md#h=2.0.5", "section", ["tool", "2.0.5 (2023-01-01)", "Removed"]), [])  # a version
    assert skipped(b("r.md#h=v20", "table", ["node", "v20.10.0"]), [])
    assert not skipped(b("r.md#h=Changelogs", "section", ["tool", "Changelogs of others", "x"]), words)  # a word
    assert not skipped(b("r.md#h=Install", "section", ["tool", "Install", "Python 3.11 or later"]), words)
    assert not skipped(b("r.md#h=Install", "section", ["tool 2.0", "Install"]), words)  # a name with a version
    assert skipped(b("r.md#h=3.0", "section", ["tool", "3.0.0rc1 (2022-10-18)", "Removed"]), [])
    assert skipped(b("r.md#h=1.2", "section", ["tool", "[1.2.0] - 2023-01-31"]), [])
    for numbered in ("6.1 Hash functions", "2.3. DESCRIPTION", "1.2.3 Rated output"):  # numbered sections
        assert not skipped(b("m.html#h=x", "section", ["manual", numbered]), []), numbered
    assert skipped(b("m.html#h=x", "section", ["manual", "2.9. CONTRIBUTORS"]), words)  # its number is no word
    log = "0.18.3 (2023-10-29):\n\n- fix a newline\n\n0.18.2 (2023-10-24):\n\n- fix a crash"
    assert skipped(b("r.md#h=Breaking changes", "section", ["tool", "Breaking changes"], log), words)
    steps = "Install it:\n\n1.0 is the first release. Then run it.\n\nDone."
    assert not skipped(b("r.md#h=Use", "section", ["tool", "Use"], steps), words)  # one version: no changelog


def test_a_site_s_navigation_and_search_boxes_are_skipped_by_the_default_words():
    # A Sphinx page's sidebar ("Navigation": two links to the manual's own index) was asked as a section (#19).
    words = repo_params()["generate"]["skip_sections"]
    for chrome in ("Navigation", "Quick search", "This Page"):
        assert skipped(b("p.html#h=x", "section", ["Debian Python Policy", chrome]), words), chrome
    assert not skipped(b("p.html#h=x", "section", ["Manual", "Navigating the tree"]), words)


def test_a_one_word_definition_is_a_value_not_a_definition():
    entries = [
        {"term": "external_general_entities", "definition": "Ignored"},
        {"term": "file", "definition": "<string>"},
    ]
    glossary = b("d.md#h=Options", "definitions", ["tool", "Options"], items=entries)
    assert [i.fields["term"] for i in definitions(glossary, task("definitions"))] == []
    entries.append({"term": "store", "definition": "the folder the files live in"})
    assert [i.answer for i in definitions(glossary, task("definitions"))] == ["The folder the files live in."]
