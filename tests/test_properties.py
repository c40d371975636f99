"""Invariants checked on generated inputs (hypothesis): extract loses no text and cuts long sections cleanly, balance
keeps its ratio and its seed, the split never leaks a source into both sides.

Example counts are kept small (the file runs in well under 20 s on 2 cores); hypothesis shrinks any failure to a
minimal document or example list and prints it, so a failure here reads like a hand-written test case.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from finetune.documents.readers import file_blocks, markdown_blocks
from finetune.documents.sections import one_line
from finetune.documents.tables import is_note, period
from finetune.generation.splits import balance, run, split, targets
from finetune.params import Balance, Split

# deadline=None: the first example pays for importing markdown-it, which would trip the default 200 ms deadline.
SETTINGS = settings(max_examples=60, deadline=None)

# Lowercase ASCII words: nothing Markdown gives a meaning to (no *, |, #, digits that start a list), so every word
# the generator writes is content the reader must keep.
word = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
words = st.lists(word, min_size=1, max_size=6).map(" ".join)

heading = st.tuples(st.just("h"), st.integers(1, 3), words)
# A paragraph may wrap over several source lines: the reader joins them, it must not drop the later lines.
paragraph = st.tuples(st.just("para"), st.lists(words, min_size=1, max_size=3))
numbered = st.tuples(st.just("ol"), st.lists(words, min_size=1, max_size=5))
bullets = st.tuples(st.just("ul"), st.lists(words, min_size=1, max_size=4))


@st.composite
def pipe_table(draw):
    ncols = draw(st.integers(1, 4))
    row = st.lists(words, min_size=ncols, max_size=ncols)
    return "table", draw(row), draw(st.lists(row, min_size=1, max_size=4))


document = st.lists(st.one_of(heading, paragraph, numbered, bullets, pipe_table()), min_size=1, max_size=10)


def markdown(elements: list[tuple]) -> str:
    parts = []
    for kind, *content in elements:
        if kind == "h":
            parts.append(f"{'#' * content[0]} {content[1]}")
        elif kind == "para":
            parts.append("\n".join(content[0]))
        elif kind == "ol":
            parts.append("\n".join(f"{n}. {item}" for n, item in enumerate(content[0], 1)))
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in content[0]))
        else:
            header, rows = content
            lines = [header, ["---"] * len(header), *rows]
            parts.append("\n".join("| " + " | ".join(cells) + " |" for cells in lines))
    # Blank lines between elements: without one, Markdown reads a list after a paragraph as part of it.
    return "\n\n".join(parts) + "\n"


def contains(haystack: str, needle: str) -> bool:
    """`needle` as whole words inside `haystack` (so "ab" is not found inside "cab")."""
    return f" {one_line(needle)} " in f" {one_line(haystack)} "


@SETTINGS
@given(document)
def test_extract_keeps_every_paragraph_list_item_and_table_cell_of_a_markdown_file(elements):
    # min_chars=0: by design extract drops prose shorter than min_chars; with 0 nothing may go missing.
    blocks = markdown_blocks(markdown(elements), "doc.md", min_chars=0)
    texts = [b["text"] for b in blocks]
    items = {one_line(i) for b in blocks for i in b.get("items", [])}
    rows = [list(r.values()) for b in blocks for r in b.get("rows", [])]
    keys = {k for b in blocks for r in b.get("rows", []) for k in r}
    headings = {one_line(content[1]) for kind, *content in elements if kind == "h"}
    for kind, *content in elements:
        if kind == "para":
            assert any(contains(t, " ".join(content[0])) for t in texts), content
        elif kind in ("ol", "ul") and len(content[0]) >= 3 and all(one_line(i) in headings for i in content[0]):
            continue  # a list of the document's own headings reads as its table of contents: dropped by design
        elif kind in ("ol", "ul"):
            for item in content[0]:
                assert item in items or any(contains(t, item) for t in texts), item
        elif kind == "table":
            header, body = content
            # Side-by-side column groups (| a | b | a | b |) give a row per group; a row repeating the header, or a
            # note (one cell, or the same text across the row), has no values (documents/tables.py).
            p = period(header)
            valued = False
            for cells in body:
                if [one_line(c) for c in cells] == [one_line(h) for h in header] or is_note(cells):
                    continue
                valued = True
                for k in range(0, len(cells), p):
                    assert [one_line(c) for c in cells[k : k + p]] in rows, cells
            # Header cells are the row keys (a repeated one gets " (2)" appended to stay a distinct key); a table
            # whose every body row repeats the header or is a note has no row to key.
            if valued:
                assert all(any(k == h or k.startswith(f"{h} (") for k in keys) for h in header[:p]), header


# CSV cells: any printable text, including what CSV has to quote (commas, quotes, line breaks) and non-ASCII.
cell = st.text(
    st.characters(categories=("L", "N", "P", "S", "Zs"), include_characters=',"\n', exclude_characters="\ufeff"),
    max_size=12,
)
header_name = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@st.composite
def csv_table(draw):
    header = draw(st.lists(header_name, min_size=1, max_size=5, unique=True))
    row = st.lists(cell, min_size=len(header), max_size=len(header))
    return header, draw(st.lists(row, min_size=1, max_size=8))


@SETTINGS
@given(csv_table())
def test_extract_keeps_every_cell_of_a_csv_in_its_own_row_s_block(table):
    header, rows = table
    kept = [r for r in rows if any(c.strip() for c in r)]  # all-empty rows are skipped by design
    assume(kept)
    with tempfile.TemporaryDirectory() as tmp:  # not tmp_path: hypothesis reruns the body, a fixture runs once
        path = Path(tmp) / "table.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        _, blocks = file_blocks(path, 0)
    assert len(blocks) == len(kept)
    for b, cells in zip(blocks, kept, strict=True):
        assert b["rows"] == [{h: one_line(c) for h, c in zip(header, cells, strict=True)}]
        for c in cells:
            assert one_line(c) in b["text"], (c, b["text"])


# A section cut by extract.max_chars: sentences, bullets and fenced code (which may hold blank lines) in one section.
sentence = st.lists(word, min_size=1, max_size=12).map(lambda ws: " ".join(ws).capitalize() + ".")
prose_para = st.tuples(st.just("para"), st.lists(sentence, min_size=1, max_size=6).map(" ".join))
code_fence = st.tuples(st.just("code"), st.lists(st.lists(word, max_size=4).map(" ".join), min_size=1, max_size=8))
section_body = st.lists(st.one_of(prose_para, bullets, code_fence), min_size=1, max_size=8)


def section_markdown(elements: list[tuple]) -> str:
    parts = ["## part"]
    for kind, content in elements:
        if kind == "para":
            parts.append(content)
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in content))
        else:  # inside a list item, so the code stays part of the section's text (a top-level fence is a code block)
            parts.append("- run this:\n\n  ```\n" + "\n".join(f"  {line}" for line in content) + "\n  ```")
    return "\n\n".join(parts) + "\n"


@SETTINGS
@given(section_body, st.integers(20, 300))
def test_a_long_section_is_cut_into_parts_within_budget_losing_and_reordering_nothing(elements, max_chars):
    md = section_markdown(elements)
    [whole] = [b for b in markdown_blocks(md, "doc.md", min_chars=0) if b["kind"] == "section"]
    parts = [b for b in markdown_blocks(md, "doc.md", min_chars=0, max_chars=max_chars) if b["kind"] == "section"]
    assert " ".join(p["text"] for p in parts).split() == whole["text"].split()
    assert [i for p in parts for i in p["items"]] == whole["items"]
    for p in parts:
        fences = p["text"].count("```")
        assert fences % 2 == 0, p["text"]  # a fence is never cut in two
        assert len(p["text"]) <= max_chars or fences, (max_chars, p["text"])
        assert p["headings"] == whole["headings"] and p["title"] == whole["title"]
    if len(parts) > 1:
        assert [p["source"] for p in parts] == [f"{whole['source']}#part={n}" for n in range(1, len(parts) + 1)]


# --- balance and split ------------------------------------------------------------------------------------------

counts = st.dictionaries(st.sampled_from("ABCDEFGH"), st.integers(1, 300), min_size=1)
max_ratio = st.floats(1.0, 10.0)
max_upsample = st.integers(1, 20)


@SETTINGS
@given(counts, max_ratio, max_upsample)
def test_targets_keep_max_over_min_within_max_ratio_and_up_sampling_within_max_upsample(counts, max_ratio, up):
    # Preconditions: max_ratio >= 1 and every task has an example. The ratio then always holds: where up-sampling
    # alone cannot reach it (c * max_upsample < top / max_ratio), the majority is cut down instead.
    sizes = targets(counts, max_ratio, up)
    assert set(sizes) == set(counts)
    assert max(sizes.values()) <= max_ratio * min(sizes.values())
    for task, c in counts.items():
        assert 1 <= sizes[task] <= c * up
    # When every minority can be raised to within the ratio, nothing is thrown away.
    if all(c * up >= max(counts.values()) / max_ratio for c in counts.values()):
        assert all(sizes[t] >= c for t, c in counts.items())


@st.composite
def examples(draw, one_task_per_source: bool = False):
    """Examples of a few tasks from a few sources; a source may feed several tasks unless told otherwise."""
    n_sources = draw(st.integers(1, 12))
    source_task = [draw(st.sampled_from("ABCD")) for _ in range(n_sources)]
    out = []
    for i in range(draw(st.integers(1, 60))):
        s = draw(st.integers(0, n_sources - 1))
        task = source_task[s] if one_task_per_source else draw(st.sampled_from("ABCD"))
        out.append({"id": f"e{i}", "source": f"doc.md#h=S{s}", "task": task, "messages": []})
    return out


@SETTINGS
@given(examples(), st.floats(0.0, 0.9), st.integers(0, 2**32 - 1))
def test_split_never_puts_one_source_in_both_train_and_val(exs, val_fraction, seed):
    train, val = split(exs, val_fraction, seed)
    assert not {e["source"] for e in train} & {e["source"] for e in val}
    # Nothing lost or doubled, and each side keeps the input order.
    assert sorted(e["id"] for e in train + val) == sorted(e["id"] for e in exs)
    assert [e["id"] for e in train] == [e["id"] for e in exs if e in train]


@SETTINGS
@given(examples(one_task_per_source=True), st.floats(0.0, 0.9), st.integers(0, 2**32 - 1))
def test_split_leaves_every_task_in_train(exs, val_fraction, seed):
    train, _ = split(exs, val_fraction, seed)
    assert {e["task"] for e in train} == {e["task"] for e in exs}


@SETTINGS
@given(examples(), max_ratio, max_upsample, st.integers(0, 2**32 - 1))
def test_balance_meets_its_targets_keeps_ids_unique_and_is_the_same_for_the_same_seed(exs, ratio, up, seed):
    out = balance(exs, ratio, up, seed)
    assert out == balance(exs, ratio, up, seed)
    got = Counter(e["task"] for e in out)
    assert got == targets(Counter(e["task"] for e in exs), ratio, up)
    assert max(got.values()) <= ratio * min(got.values())
    assert len({e["id"] for e in out}) == len(out)  # copies are renamed <id>~2, <id>~3, ...
    originals = {e["id"]: e for e in exs}
    assert all(originals[e["id"].split("~")[0]] | {"id": e["id"]} == e for e in out)  # copies, never edits


@SETTINGS
@given(examples(), st.integers(0, 2**32 - 1))
def test_balance_run_is_deterministic_for_its_seeds(exs, seed):
    bparams = Balance(max_ratio=2.0, max_upsample=10, min_examples=1, seed=seed)
    sparams = Split(val_fraction=0.2, seed=seed)

    def outcome():
        try:
            return run(exs, bparams, sparams)
        except ValueError as e:  # nothing left to train on: the same answer both times too
            return str(e)

    assert outcome() == outcome()
