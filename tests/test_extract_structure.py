"""Extraction keeps a document's structure (issue 9, items 3 and 4): code verbatim, inline code in backticks, heading
anchors and front matter out, <details> as a subsection, lists as items, links as their text, glossaries and option
lists as definitions, and long sections cut into parts at clean boundaries."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from finetune.documents.readers import html_blocks, markdown_blocks, txt_blocks
from finetune.documents.sections import cut_spans, section_block
from tests.conftest import params_file
from tests.extract_corpus import extract


def kinds(blocks) -> list[tuple[str, str]]:
    return [(b["kind"], b["title"]) for b in blocks]


def test_a_code_block_is_its_own_block_verbatim_with_its_language_and_lead():
    md = (
        "# Tool\n\n## Install\n\nAdd it to your shell profile:\n\n"
        "```bash\nif [ -d ~/.tool ]; then\n    export PATH=~/.tool/bin:$PATH\nfi\n```\n"
    )
    [code] = [b for b in markdown_blocks(md, "t.md", 0) if b["kind"] == "code"]
    assert code["code"] == "if [ -d ~/.tool ]; then\n    export PATH=~/.tool/bin:$PATH\nfi"  # indentation kept
    assert code["language"] == "bash"
    assert code["lead"] == "Add it to your shell profile:"
    assert code["text"] == f"```bash\n{code['code']}\n```"
    assert code["headings"] == ["Tool", "Install"]


def test_a_code_block_without_a_language_or_lead_has_empty_ones():
    [code] = markdown_blocks("## Run\n\n    tool run --all\n", "t.md", 0)
    assert (code["kind"], code["code"], code["language"], code["lead"]) == ("code", "tool run --all", "", "")


def test_inline_code_keeps_its_backticks_and_links_are_reduced_to_their_text():
    md = "## Usage\n\nRun `tool add <path>` as described in [the setup guide](setup.md#install) or <https://x.test>.\n"
    [section] = markdown_blocks(md, "t.md", 0)
    assert section["text"] == "Run `tool add <path>` as described in the setup guide or https://x.test."


def test_heading_anchors_are_not_part_of_titles_or_locations():
    md = "# Tool {#top}\n\n## Add a link {#add-symlink}\n\nLinks a file into the target folder, replacing none.\n"
    [section] = markdown_blocks(md, "t.md", 0)
    assert section["title"] == "Tool / Add a link"
    assert section["headings"] == ["Tool", "Add a link"]
    assert section["source"] == "t.md#h=Add a link"
    html = '<h2 id="x">Remove<a class="headerlink" href="#x">¶</a></h2><p>Removes the link again.</p>'
    assert [b["title"] for b in html_blocks(html, "t.html", 0)] == ["Remove"]
    # A term's permalink too (texinfo and Sphinx put one after each definition's term)
    html = '<h2>Types</h2><dl><dt><code>u8</code><a class="copiable-link" href="#u8"> ¶</a></dt><dd>An 8-bit one.</dd></dl>'
    [definitions] = [b for b in html_blocks(html, "t.html", 0) if b["kind"] == "definitions"]
    assert [item["term"] for item in definitions["items"]] == ["`u8`"]


def test_a_pages_navigation_is_no_text_of_its_sections():
    # A Texinfo manual opens every node with one: "Next: …, Previous: …, Up: … [Contents]", links typed by rel.
    nav = '<p>Next: <a href="#b" rel="next">Limits</a>, Up: <a href="#top" rel="up">Top</a> [<a rel="contents">C</a>]</p>'
    html = (
        f'<div class="header">{nav}</div><h2>Limits</h2><p>The following limits are in place for this processor.</p>'
    )
    html += '<nav><a href="#a">Home</a> <a href="#b">Index</a></nav>'
    html += '<div role="navigation"><p>Back to the top of the manual</p></div>'
    [section] = html_blocks(f"<body>{html}</body>", "m.html", 0)
    assert section["text"] == "The following limits are in place for this processor."
    # A block that holds the page and a next link too is still read: only a paragraph with such a link is navigation.
    body = '<div><p>Limits are set when the processor is built, and cannot grow.</p><a rel="next" href="#n">Next</a></div>'
    assert "cannot grow" in html_blocks(f"<body><h2>Limits</h2>{body}</body>", "m.html", 0)[0]["text"]


def test_front_matter_is_dropped():
    md = "---\ntitle: Tool reference\nweight: 3\n---\n# Tool\n\nTool links files into place and keeps a record.\n"
    blocks = markdown_blocks(md, "t.md", 0)
    assert [(b["title"], b["text"]) for b in blocks] == [("Tool", "Tool links files into place and keeps a record.")]


def test_details_is_a_subsection_and_the_section_goes_on_after_it():
    md = (
        "## Sync\n\nSync copies the links to every host in the inventory file.\n\n"
        "<details>\n<summary>How conflicts are settled</summary>\n\n"
        "The newer link wins; the older one is kept with a `.orig` suffix.\n\n</details>\n\n"
        "A sync never deletes a file it did not create.\n"
    )
    blocks = markdown_blocks(md, "t.md", 0)
    assert [(b["source"], b["text"]) for b in blocks] == [
        ("t.md#h=Sync", "Sync copies the links to every host in the inventory file."),
        ("t.md#h=Sync/How conflicts are settled", "The newer link wins; the older one is kept with a `.orig` suffix."),
        ("t.md#h=Sync", "A sync never deletes a file it did not create."),
    ]
    assert blocks[1]["headings"] == ["Sync", "How conflicts are settled"]


def test_bullets_are_the_items_of_their_section_and_numbered_lists_are_list_blocks():
    md = (
        "## Setup\n\nBefore the first run:\n\n- Create the folder.\n- Set the owner:\n  - user `tool`\n"
        "  - group `tool`\n\nThen:\n\n1. Run `tool init`.\n2. Run `tool check`.\n"
    )
    section, steps = markdown_blocks(md, "t.md", 0)
    assert section["kind"] == "section"
    assert section["items"] == ["Create the folder.", "Set the owner:\n- user `tool`\n- group `tool`"]
    assert section["text"] == (
        "Before the first run:\n\n- Create the folder.\n- Set the owner:\n  - user `tool`\n  - group `tool`\n\nThen:"
        "\n\n1. Run `tool init`.\n2. Run `tool check`."
    )  # "Then:" keeps the steps it leads to
    assert (steps["kind"], steps["items"], steps["lead"]) == (
        "list",
        ["Run `tool init`.", "Run `tool check`."],
        "Then:",
    )


def test_option_lists_and_marked_up_glossaries_are_definitions():
    md = (
        "## Options\n\n- `-f`, `--force`: Replace an existing file.\n- `--dry-run` Print what would change.\n\n"
        "## Terms\n\n**Target**: the folder links point into.\n\n**Inventory** — the list of hosts to sync.\n\n"
        "## Plain\n\nSource\n: the folder the files come from.\n"
    )
    options, terms, plain = markdown_blocks(md, "t.md", 0)
    assert options["kind"] == terms["kind"] == "definitions"
    assert options["items"] == [
        {"term": "-f, --force", "definition": "Replace an existing file."},
        {"term": "--dry-run", "definition": "Print what would change."},
    ]
    assert terms["items"] == [
        {"term": "Target", "definition": "the folder links point into."},
        {"term": "Inventory", "definition": "the list of hosts to sync."},
    ]
    assert plain["kind"] == "section"  # one Markdown Extra definition is not a glossary yet…
    [dl] = html_blocks("<h2>Terms</h2><dl><dt>Host</dt><dd>A machine in the inventory.</dd></dl>", "t.html", 0)
    assert (dl["kind"], dl["items"]) == (
        "definitions",
        [{"term": "Host", "definition": "A machine in the inventory."}],
    )
    two = markdown_blocks("## G\n\nSource\n: where files come from.\n\nTarget\n: where links go.\n", "t.md", 0)
    assert [b["kind"] for b in two] == ["definitions"]  # …two are


def test_notes_written_as_label_colon_text_stay_bullets_of_their_section():
    # Only a marked-up term or an option flag makes an entry: "Terminal X5: 230 V" is a note, whatever it labels.
    md = "## Connections\n\n- Terminal X4: room thermostat, volt-free.\n- Terminal X5: 230 V supply, fused at 3 A.\n"
    [section] = markdown_blocks(md, "t.md", 0)
    assert section["kind"] == "section"
    assert section["items"] == ["Terminal X4: room thermostat, volt-free.", "Terminal X5: 230 V supply, fused at 3 A."]


def test_a_heading_word_or_a_column_name_never_decides_the_kind():
    md = (
        "## Wiring — Panel\n\n- Pin 1: supply.\n- Pin 2: ground.\n\n"
        "## Troubleshooting\n\n| Symptom | Cause |\n|---|---|\n| No light | No power |\n"
    )
    assert [b["kind"] for b in markdown_blocks(md, "t.md", 0)] == ["section", "table"]


# --- long sections ----------------------------------------------------------------------------------------------

LONG = (
    "## Sync\n\n"
    + " ".join(f"Sentence {n} of the first paragraph says something about syncing hosts." for n in range(8))
    + "\n\n- "
    + "\n- ".join(f"Item {n} explains one more rule of the sync." for n in range(10))
    + "\n\nA short closing paragraph.\n"
)


def test_a_section_over_max_chars_is_cut_into_parts_at_clean_boundaries():
    whole = markdown_blocks(LONG, "t.md", 0)[0]
    parts = markdown_blocks(LONG, "t.md", 0, max_chars=200)
    assert len(whole["text"]) > 600 and len(parts) >= 4
    assert all(len(p["text"]) <= 200 for p in parts)
    assert [p["source"] for p in parts] == [f"t.md#h=Sync#part={n}" for n in range(1, len(parts) + 1)]
    assert {p["title"] for p in parts} == {"Sync"} and all(p["headings"] == ["Sync"] for p in parts)
    # Nothing lost, nothing doubled: the parts read back as the whole, and each part ends where a sentence,
    # an item or a paragraph does.
    assert " ".join(" ".join(p["text"] for p in parts).split()) == " ".join(whole["text"].split())
    assert all(re.search(r"[.:]$", p["text"]) for p in parts)
    # Each bullet item goes with the part that holds it, in order.
    assert [i for p in parts for i in p["items"]] == whole["items"]
    assert all(f"- {i}" in p["text"] for p in parts for i in p["items"])


def test_a_section_within_max_chars_and_max_chars_0_are_not_cut():
    assert len(markdown_blocks(LONG, "t.md", 0, max_chars=0)) == 1
    assert markdown_blocks(LONG, "t.md", 0, max_chars=5000)[0]["source"] == "t.md#h=Sync"


def test_a_fenced_code_block_is_never_cut_even_when_it_alone_is_over_max_chars():
    code = "\n".join(f"    line {n}: keep indentation" for n in range(12))
    text = f"Intro paragraph for the code.\n\n```\n{code}\n```\n\nA closing paragraph after the code."
    spans = cut_spans(text, 100)
    pieces = [text[a:b].strip() for a, b in spans]
    assert f"```\n{code}\n```" in pieces  # whole, on its own, over the budget
    assert all(len(p) <= 100 for p in pieces if "```" not in p)


@pytest.mark.parametrize("max_chars", [40, 120, 333])
def test_cut_spans_cover_the_text_in_order_without_overlap(max_chars):
    text = LONG.split("\n\n", 1)[1]
    spans = cut_spans(text, max_chars)
    assert all(a < b for a, b in spans) and all(b1 <= a2 for (_, b1), (a2, _) in pairwise(spans))
    assert all(not text[b1:a2].strip() for (_, b1), (a2, _) in pairwise(spans))  # only white space between
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(b - a <= max_chars for a, b in spans)


def test_max_chars_comes_from_params_and_the_metrics_count_the_cuts(tmp_path, monkeypatch):
    params_file(tmp_path / "params.yaml", {"extract": {"max_chars": 200}})
    result, blocks, metrics = extract(tmp_path, monkeypatch, {"t.md": LONG}, "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    assert metrics["split"] == {"sections": 1, "parts": len(blocks)} and len(blocks) >= 4


def test_a_table_row_longer_than_its_header_adds_a_column():
    [table] = html_blocks("<table><tr><th>Pin</th><th>Name</th></tr><tr><td>1</td><td>VDD</td><td>3.3 V</td></tr>"
                          "</table>", "t.html", 0)  # fmt: skip
    assert table["columns"] == ["Pin", "Name", "Column 3"]
    assert table["rows"] == [{"Pin": "1", "Name": "VDD", "Column 3": "3.3 V"}]


# --- PDF pages: tables found by where their text stands ---------------------------------------------------------


def test_pieces_of_text_in_the_header_s_columns_are_a_table_and_a_wrapped_cell_joins_its_row():
    from finetune.documents.pages import pdf_lines

    cols = [30, 120, 210, 300]
    pieces = [(30, 800, "TB-9 - Electrical"), (30, 780, "All values at 25 C.")]
    pieces += [(x, 750, t) for x, t in zip(cols, ["Symbol", "Parameter", "Typ", "Unit"])]
    pieces += [(x, 730, t) for x, t in zip(cols, ["VDD", "Supply voltage", "3.3", "V"])]
    pieces += [
        (120, 710, "Supply current,"),
        (30, 700, "IDD"),
        (210, 700, "12"),
        (300, 700, "mA"),
        (120, 690, "active"),
    ]
    pieces += [(30, 660, "Values are typical, not tested in production.")]  # the left margin is no table column
    assert pdf_lines(pieces) == [
        "TB-9 - Electrical",
        "All values at 25 C.",
        ("table", ["Symbol", "Parameter", "Typ", "Unit"],
         [["VDD", "Supply voltage", "3.3", "V"], ["IDD", "Supply current, active", "12", "mA"]]),
        "Values are typical, not tested in production.",
    ]  # fmt: skip


def test_lines_of_prose_are_no_table_however_many_pieces_they_have():
    from finetune.documents.pages import pdf_lines

    pieces = [(30, 800, "One"), (60, 800, "line"), (90, 800, "here."), (30, 780, "Another"), (75, 780, "line"),
              (100, 780, "follows.")]  # fmt: skip
    assert pdf_lines(pieces) == ["One line here.", "Another line follows."]


def test_an_empty_definition_list_gives_no_block():
    assert html_blocks("<h2>Terms</h2><dl><dt>Orphan term</dt></dl><p>The one paragraph of the section.</p>",
                       "t.html", 0) == html_blocks("<h2>Terms</h2><p>The one paragraph of the section.</p>", "t.html", 0)  # fmt: skip


def test_paragraphs_in_a_row_of_the_shape_term_colon_text_are_a_glossary_even_unmarked():
    md = "## Glossary\n\nStore: the folder that holds the files.\n\nTarget — where a link points.\n\nThe end of it.\n"
    glossary, after = markdown_blocks(md, "g.md", 0)
    assert glossary["items"] == [
        {"term": "Store", "definition": "the folder that holds the files."},
        {"term": "Target", "definition": "where a link points."},
    ]
    assert (after["kind"], after["text"]) == ("section", "The end of it.")
    # One such paragraph alone, or a term of more than four words, is prose.
    one = markdown_blocks("## Note\n\nWarning: the cover is hot.\n\nLet it cool first.\n", "n.md", 0)
    assert [b["kind"] for b in one] == ["section"]


def test_a_section_keeps_its_code_fenced_where_it_was_so_no_answer_stops_on_a_lead_in():
    md = (
        "## Install\n\nThe tool is one binary. Put it on your path with:\n\n"
        "```sh\ninstall -m 755 tool ~/bin/tool\n```\n\nThen check the version.\n"
    )
    section, code_block = markdown_blocks(md, "t.md", 0)
    assert section["text"] == (
        "The tool is one binary. Put it on your path with:\n\n"
        "```sh\ninstall -m 755 tool ~/bin/tool\n```\n\nThen check the version."
    )
    assert (code_block["kind"], code_block["lead"]) == ("code", "The tool is one binary. Put it on your path with:")
    # Code alone, with no prose before it, is no section: the code block says it all.
    assert [b["kind"] for b in markdown_blocks("## Synopsis\n\n```\ntool add PATH\n```\n", "t.md", 0)] == ["code"]


def test_a_long_section_is_never_cut_right_after_a_lead_in():
    text = "A first paragraph, long enough to fill a part alone.\n\nDo it like this:\n\nThe thing it led to."
    spans = cut_spans(text, 60)
    parts = [text[a:b] for a, b in spans]
    assert len(parts) > 1 and not any(p.rstrip().endswith(":") for p in parts), parts
    assert "Do it like this:\n\nThe thing it led to." in parts


def test_a_text_paragraph_ending_on_a_lead_in_takes_the_next_paragraph_fenced_when_indented_deeper():
    text = (
        "Tool keeps links in one folder and restores them anywhere.\n\n"
        "Read the help in the interpreter with::\n\n    >>> import tool\n    >>> help(tool)\n\n"
        "        >>> tool.run()\n\n"
        "It works on every platform. Two things matter:\n\n"
        "Links are relative, and the store is plain files anyone can read.\n"
    )
    assert [(b["source"], b["text"]) for b in txt_blocks(text, "t.txt", 10)] == [
        ("t.txt#para=1", "Tool keeps links in one folder and restores them anywhere."),
        ("t.txt#para=2", "Read the help in the interpreter with:\n\n```\n>>> import tool\n>>> help(tool)\n```"),
        ("t.txt#para=4", ">>> tool.run()"),  # the next paragraph is a paragraph of its own, as before
        (
            "t.txt#para=5",
            "It works on every platform. Two things matter:\n\n"
            "Links are relative, and the store is plain files anyone can read.",
        ),
    ]


def test_a_long_sections_lead_in_stays_with_its_code_and_code_alone_is_no_part():
    code = "```\n" + "x = 1\n" * 20 + "```"
    text = f"Intro one. Intro two.\n\nA long lead that explains the code below:\n\n{code}\n\n```\nls\n```"
    parts = [b["text"] for b in section_block("t.md#h=A", "A", ["A"], text, [], 80)]
    assert parts == ["Intro one. Intro two.", f"A long lead that explains the code below:\n\n{code}"]
