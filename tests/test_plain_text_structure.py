"""Plain text whose layout marks its structure (a reStructuredText README, a man page rendered to text) is cut at
its headings like Markdown: no longer every paragraph a section of its own, asked as "What should I know about
<file name>?"."""

from __future__ import annotations

from finetune.documents.plaintext import text_events
from finetune.documents.readers import txt_blocks

MAN = """\
TOOL(1)                        User Commands                        TOOL(1)

NAME
       tool - keep links in one folder

SYNOPSIS
       tool [options] file...

DESCRIPTION
       tool moves each file into its store and leaves a link in its place, so
       that a new machine gets every file back with one command.

OPTIONS
       -n, --dry-run
           Print what would be done, and change nothing.

       -V
       --version
           Print the version and exit.

       -s dir, --store dir
           Use dir as the store instead of ~/.tool.

   Exit codes
       tool exits with 0 on success and with 1 when a file could not be moved
       into the store.

tool 2.4                          2026-01-01                          TOOL(1)
"""

RST = """\
Tool
====

Keeps your dotfiles in one folder. See `the manual <https://example.invalid/m>`_ and ``tool --help``.

|badge| |coverage|

Installing
----------

Install it from the package index with::

    pip install tool

LICENSE
"""


def test_a_man_page_is_cut_at_its_section_names_and_its_options_are_glossary_entries():
    events = text_events(MAN)
    assert [e[1:] for e in events if e[0] == "h"] == [
        (2, "NAME"), (2, "SYNOPSIS"), (2, "DESCRIPTION"), (2, "OPTIONS"), (3, "Exit codes")
    ]  # fmt: skip
    (options,) = [e[1] for e in events if e[0] == "dl"]
    assert options == [
        ("-n, --dry-run", "Print what would be done, and change nothing."),
        ("-V, --version", "Print the version and exit."),  # the spellings of one option, one a line
        ("-s dir, --store dir", "Use dir as the store instead of ~/.tool."),
    ]
    assert not any("User Commands" in str(e) or "2026-01-01" in str(e) for e in events)  # running header/footer


def test_a_man_pages_blocks_are_its_sections_named_by_the_file_not_by_NAME():
    blocks = txt_blocks(MAN, "man/tool.txt", 20, not_titles=("Name", "Synopsis"))
    by_source = {b["source"]: b for b in blocks}
    assert "man/tool.txt#h=DESCRIPTION" in by_source and "man/tool.txt#h=OPTIONS/Exit codes" in by_source
    assert by_source["man/tool.txt#h=OPTIONS"]["kind"] == "definitions"
    assert {b["document"] for b in blocks} == {"tool"}
    assert by_source["man/tool.txt#h=DESCRIPTION"]["text"].startswith("tool moves each file into its store")


def test_underlined_headings_take_their_levels_in_the_order_first_seen_and_rest_markup_is_text():
    events = text_events(RST)
    assert [e[1:] for e in events if e[0] == "h"] == [(1, "Tool"), (2, "Installing"), (2, "LICENSE")]
    paras = [e[1] for e in events if e[0] == "para"]
    assert paras[0] == "Keeps your dotfiles in one folder. See the manual and `tool --help`."
    assert "Install it from the package index with:" in paras  # reST's "::" is a colon before the literal
    assert ("code", "pip install tool", "") in events
    assert not any("|badge|" in p for p in paras)  # substitutions: pictures in the rendered page


def test_text_with_no_heading_has_no_events_and_stays_read_paragraph_by_paragraph():
    text = "A first paragraph that says something.\n\nA second one, which ends here.\n"
    assert text_events(text) == []
    assert [b["source"] for b in txt_blocks(text, "n.txt", 10)] == ["n.txt#para=1", "n.txt#para=2"]


def test_rest_references_line_blocks_and_a_lone_double_colon_read_as_their_text():
    text = (
        "Tool\n====\n\n| Tool keeps links in one place.\n| It is `small <https://x.invalid>`__.\n\n"
        "Usage\n-----\n\nUse `center()`_ like str.center, see node-tool_ and ``__init__``.\n\n::\n\n    tool run\n"
    )
    events = text_events(text)
    paras = [e[1] for e in events if e[0] == "para"]
    assert paras == [
        "Tool keeps links in one place. It is small.",
        "Use center() like str.center, see node-tool and `__init__`.",
    ]
    assert ("code", "tool run", "") in events  # "::" alone leads in to it and is no paragraph


def test_a_man_pages_hyphenated_words_are_joined_and_its_code_keeps_its_blank_lines():
    page = (
        "NAME\n       tool - keep links\n\nDESCRIPTION\n       tool keeps links in one place and restores them suc\u2010\n"
        "       cessfully on a new machine, like this:\n\n           int\n           main(void)\n\n"
        "           {\n               return 0;\n           }\n\n       And that is all there is to it.\n"
    )
    events = text_events(page)
    assert (
        "para",
        "tool keeps links in one place and restores them successfully on a new machine, like this:",
        None,
    ) in events
    assert ("code", "int\nmain(void)\n\n{\n    return 0;\n}", "") in events  # one block: the blank line is in it
    assert events[-1] == ("para", "And that is all there is to it.", None)


def test_list_items_on_consecutive_lines_are_items_and_numbered_ones_a_numbered_list():
    text = "Release\n=======\n\n1) Tag it with\n   the version.\n2) Push it.\n\nThen:\n\n- check PyPI\n- tell users\n"
    events = text_events(text)
    assert ("ol", ["Tag it with the version.", "Push it."], [None, None]) in events
    assert ("ul", ["check PyPI", "tell users"], [None, None]) in events
