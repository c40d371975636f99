"""Tables read right (issue 19, item 5): header rows found (repeated or two-row headers too), side-by-side column pairs
split into rows, note rows and footnote markers not taken as values, a unit column only when it holds units, and the
qualifier kept in the answer ("Max 3.6 V")."""

from __future__ import annotations

from finetune.documents.readers import html_blocks, markdown_blocks
from finetune.documents.tables import shape, unmarked
from finetune.generation.builders import table
from finetune.generation.taskfile import load
from tests.conftest import REPO

DATASHEET_TASKS = load(REPO / "domains/datasheets/tasks.yaml")  # the datasheets domain's task file, unedited
SPEC = DATASHEET_TASKS.tasks["TABLE"]

# A datasheet in the layout a vendor's Markdown export gives (written for this test).
BOARD = """# QT-7 carrier board

## Pin assignment

| Pin | Function | Pin | Function |
|-----|----------|-----|----------|
| 1 | GND | 2 | VIN |
| 3 | SDA | 4 | SCL |
| Pin | Function | Pin | Function |
| 5 | TX | 6 | RX |
| 7 | RESET | | |

## Ratings

| Parameter | Symbol | Supply | | | Unit |
|-----------|--------|--------|-|-|------|
| | | Min | Typ | Max | |
| Input voltage¹ | VIN | 3.0 | 3.3 | 3.6 (1) | V |
| Parameter | Symbol | Min | Typ | Max | Unit |
| Input current | IIN | — | 40 | 120* | mA |
| (1) Measured at the connector, 25 °C ambient. | | | | | |
"""


def tables(md: str) -> dict[str, dict]:
    return {b["headings"][-1]: b for b in markdown_blocks(md, "qt7.md", 0) if b["kind"] == "table"}


def answers(block: dict, task=SPEC) -> dict[str, str]:
    return {i.fields["what"]: i.answer for i in table(block, task)}


def test_side_by_side_column_pairs_become_one_row_each_and_a_repeated_header_row_is_dropped():
    pins = tables(BOARD)["Pin assignment"]
    assert pins["columns"] == ["Pin", "Function"]
    assert [(r["Pin"], r["Function"]) for r in pins["rows"]] == [
        ("1", "GND"), ("2", "VIN"), ("3", "SDA"), ("4", "SCL"), ("5", "TX"), ("6", "RX"), ("7", "RESET")
    ]  # fmt: skip


def test_a_two_row_header_names_each_column_and_its_repeat_in_the_body_is_no_row():
    ratings = tables(BOARD)["Ratings"]
    assert ratings["columns"] == ["Parameter", "Symbol", "Supply / Min", "Supply / Typ", "Supply / Max", "Unit"]
    assert [r["Parameter"] for r in ratings["rows"]] == ["Input voltage", "Input current"]


def test_footnote_markers_and_note_rows_are_no_values():
    got = answers(tables(BOARD)["Ratings"])
    assert got["maximum input voltage (VIN)"] == "Max 3.6 V"  # "3.6 (1)": the marker is no part of it
    assert got["maximum input current (IIN)"] == "Max 120 mA"  # "120*"
    assert "minimum input current (IIN)" not in got  # "—" is no value
    assert not any("measured" in what.casefold() for what in got)  # the note row asks nothing


def test_the_answer_keeps_the_qualifier_and_says_which_limit_it_is():
    items = table(tables(BOARD)["Ratings"], SPEC)
    typical = next(i for i in items if i.fields["what"] == "typical input voltage (VIN)")
    assert typical.answer == "Typ 3.3 V" and typical.fields["qualifier"] == "typical"  # the table's own word
    assert typical.fields["value"] == "3.3" and typical.fields["unit"] == "V"


def test_a_unit_column_is_used_only_when_its_cells_look_like_units():
    md = "## Limits\n\n| Parameter | Unit | Max |\n|---|---|---|\n| Speed | 1200 | 3000 |\n| Load | 20 | 40 |\n"
    got = answers(tables(md)["Limits"])
    assert got["maximum speed"] == "Max 3000"  # no unit made of a number
    assert got["unit of Speed"] == "1200"  # the mislabelled column is a value column like the others
    good = "## Limits\n\n| Parameter | Unit | Max |\n|---|---|---|\n| Speed | rpm | 3000 |\n"
    assert answers(tables(good)["Limits"])["maximum speed"] == "Max 3000 rpm"


def test_a_row_starting_with_a_note_word_of_the_task_file_is_skipped():
    md = "## Limits\n\n| Parameter | Max |\n|---|---|\n| Speed | 3000 |\n| Hinweis: bei 25 °C | 1 |\n"
    block = tables(md)["Limits"]
    noted = SPEC.model_copy(update={"table": SPEC.table.model_copy(update={"notes": ["Hinweis"]})})
    assert "maximum hinweis: bei 25 °C" in answers(block)  # without the option it is a row like any other
    assert list(answers(block, noted)) == ["maximum speed"]


def test_html_spans_give_the_group_over_its_sub_columns_and_a_spanning_note_row_is_dropped():
    html = (
        "<h2>Ratings</h2><table>"
        "<tr><th rowspan=2>Parameter</th><th colspan=2>Supply</th></tr><tr><th>Min</th><th>Max</th></tr>"
        "<tr><td>Input voltage</td><td>3.0</td><td>3.6<sup>2</sup></td></tr>"
        "<tr><td colspan=3>Note 2: at 25 °C.</td></tr></table>"
    )
    [block] = [b for b in html_blocks(html, "t.html", 0) if b["kind"] == "table"]
    assert block["columns"] == ["Parameter", "Supply / Min", "Supply / Max"]
    assert block["rows"] == [{"Parameter": "Input voltage", "Supply / Min": "3.0", "Supply / Max": "3.6"}]


def test_markers_are_stripped_from_values_and_headers_but_not_from_words():
    assert [unmarked(c) for c in ("5.5¹", "3.6 (1)", "20*", "-40 [2]", "Supply voltage(1)", "GPIO (2)")] == [
        "5.5", "3.6", "20", "-40", "Supply voltage", "GPIO (2)"
    ]  # fmt: skip
    assert unmarked("Max (1)", header=True) == "Max"


def test_a_table_without_such_layouts_is_unchanged():
    header, rows = ["Name", "Value"], [["VDD", "3.3"], ["IDD", "5"]]
    assert shape([header], rows) == (header, rows)


def test_a_header_cell_spanning_the_row_under_the_header_is_a_label_not_column_names():
    html = (
        "<h2>Pins</h2><table><tr><th>Pin</th><th>Function</th></tr><tr><th colspan=2>Power</th></tr>"
        "<tr><td>1</td><td>GND</td></tr></table>"
    )
    [block] = [b for b in html_blocks(html, "t.html", 0) if b["kind"] == "table"]
    assert block["columns"] == ["Pin", "Function"] and block["rows"] == [{"Pin": "1", "Function": "GND"}]


def html_tables(body: str) -> list[dict]:
    return [b for b in html_blocks(f"<h1>Tool</h1><h2>Facts</h2>{body}", "t.html", 0) if b["kind"] == "table"]


def test_a_table_with_no_header_row_keeps_its_first_row_as_data():
    (kv,) = html_tables("<table><tr><td>Voltage</td><td>230 V</td></tr><tr><td>Power</td><td>24 kW</td></tr></table>")
    assert [list(r.values()) for r in kv["rows"]] == [["Voltage", "230 V"], ["Power", "24 kW"]]
    assert [(i.fields["what"], i.answer) for i in table(kv, SPEC)] == [("voltage", "230 V"), ("power", "24 kW")]
    # a first row of names is still the header when no <th> marks one
    (named,) = html_tables("<table><tr><td>Name</td><td>Rating</td></tr><tr><td>Fuse</td><td>10 A</td></tr></table>")
    assert named["columns"] == ["Name", "Rating"]
    (empty,) = tables("| | |\n|-|-|\n| Depth | 40 cm |\n| Width | 60 cm |\n").values()  # Markdown: empty header
    assert [r["Column 1"] for r in empty["rows"]] == ["Depth", "Width"]


def test_a_grid_of_links_or_pictures_is_no_table():
    cell = '<td><a href="https://x.invalid/{0}"><img src="{0}.png"><br><sub><b>{0}</b></sub></a><br><a>🐛</a></td>'
    grid = "<table><tr>" + "".join(cell.format(n) for n in ("ann", "bo", "cy")) + "</tr></table>"
    assert html_tables(grid) == []
    links = "<table><tr><th>Page</th><th>About</th></tr><tr><td><a href=a>Install</a></td><td>Setup</td></tr></table>"
    assert len(html_tables(links)) == 1  # half its cells linked: a table


def test_a_version_history_is_asked_nothing():
    history = "| Version | Changes |\n|-|-|\n| v20.10.0 | Added `--watch`. |\n| v18.0.0 | Added the flag. |\n"
    (block,) = tables(history).values()
    assert table(block, SPEC) == []
    (dated,) = tables("| Date | Change |\n|-|-|\n| 2023-01-31 | New fuse |\n| 2022-12-01 | First |\n").values()
    assert table(dated, SPEC) == []
    (spec,) = tables("| Parameter | Value |\n|-|-|\n| Firmware | v2.1.0 |\n| Depth | 40 cm |\n").values()
    assert len(table(spec, SPEC)) == 2  # versions as values are facts


def test_two_marked_up_runs_side_by_side_are_two_words_of_a_term():
    from finetune.documents.markup import term_of

    item = ("li", {}, [("code", {}, ["5"]), ("strong", {}, ["Fatal Error"]), ": V8 failed."])
    assert term_of(item) == ("5 Fatal Error", "V8 failed.")
    flags = ("li", {}, [("code", {}, ["-f"]), ", ", ("code", {}, ["--force"]), " add anyway"])
    assert term_of(flags) == ("-f, --force", "add anyway")
