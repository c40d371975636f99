"""Bad input, from the corpus in tests/data/bad/: each file goes into a raw folder beside a good document.

With `extract.on_error: fail` the console script stops with one line, `error: PATH:LINE (row|page N): rule`, and
writes nothing; with `skip` it extracts the rest and lists the bad file or record in metrics/rejects/heating.json.
"""

from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from finetune.cli import group, main
from finetune.documents.corpus import run
from finetune.documents.textfiles import MAX_LINE_BYTES
from finetune.io import InputError
from tests.conftest import HEATING_TASKS, params_file

BAD = Path(__file__).parent / "data" / "bad"
GOOD_MD = """\
# Aquis

## Explanation — Why the anode protects the cylinder

The magnesium anode corrodes instead of the cylinder wall, so it is checked every two years.
"""
CHAT_RULES = {
    "chat_wrong_role_order.jsonl": "roles must alternate user, assistant, …; got assistant, user",
    "chat_empty_assistant.jsonl": "message 1 (assistant) has empty content",
    "chat_system_only.jsonl": "no user or assistant turn (system message only)",
    "chat_non_string_content.jsonl": "message 1 (assistant) content is dict, expected a string",
}
# file: (location in the message, its fields in rejects.json, the rule broken, what skip leaves out, blocks kept)
CASES = {
    "malformed.jsonl": (":2", {"line": 2}, "malformed JSON: Expecting ',' delimiter at column 86", "record", 2),
    "invalid_utf8.jsonl": (
        ":2",
        {"line": 2},
        "not valid UTF-8 (invalid continuation byte at byte 46 of the line)",
        "record",
        2,
    ),
    **{name: (":2", {"line": 2}, rule, "record", 2) for name, rule in CHAT_RULES.items()},
    # A bad line of a text document is the smallest unit skip can leave out: the rest of the file stays.
    "invalid_utf8.md": (
        ":5",
        {"line": 5},
        "not valid UTF-8 (invalid start byte at byte 52 of the line); save it as UTF-8",
        "record",
        0,  # that line was the section's only text
    ),
    # A NUL byte far past the 8 KiB binary sniff: found on its line, not passed on as text.
    "late_nul.md": (":75", {"line": 75}, "binary data (a NUL byte) in the line", "record", 13),
    "empty.md": ("", {}, "empty file", "file", 0),
    "binary.md": (":3", {"line": 3}, "binary data (a NUL byte), not text: is the file type right?", "file", 0),
    "csv_duplicate_header.csv": (
        ":1",
        {"line": 1},
        "the header needs distinct, non-empty column names, got ['model_code', 'name', 'name']",
        "file",
        0,
    ),
    "csv_short_row.csv": (":3 (row 2)", {"line": 3, "row": 2}, "has 5 fields, the header has 6", "record", 2),
    "corrupt.pdf": ("", {}, "unreadable PDF (PdfStreamError: Stream has ended unexpectedly)", "file", 0),
    "encrypted.pdf": ("", {}, "the PDF is encrypted with a password; save a decrypted copy", "file", 0),
    "pdf_page_without_text.pdf": (
        " (page 2)",
        {"page": 2},
        "a blank page: no text layer, and nothing drawn to OCR",
        "record",
        2,
    ),
}
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def raw_folder(tmp_path, monkeypatch, on_error: str, *names: str) -> list[str]:
    """tmp_path/raw with good.md and the named bad files, params.yaml with on_error; the command's arguments."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "good.md").write_text(GOOD_MD, encoding="utf-8")
    for name in names:
        shutil.copy(BAD / name, tmp_path / "raw" / name)
    params_file(tmp_path / "params.yaml", {"extract": {"on_error": on_error}})
    out = ["--output", "out/blocks.jsonl", "--metrics", "out/extract.json", "--rejects", "out/rejects.json"]
    return ["extract", "--input", "raw", *out, "--params", "params.yaml"]


def test_every_file_of_the_corpus_has_a_case():
    assert sorted(p.name for p in BAD.iterdir()) == sorted([*CASES, "catalog_quoted_newline.csv", "corrupt.png"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_on_error_fail_stops_with_one_line_naming_file_location_and_rule(tmp_path, monkeypatch, capsys, name):
    where, _, rule, _, _ = CASES[name]
    with pytest.raises(SystemExit) as exit_:
        main(raw_folder(tmp_path, monkeypatch, "fail", name))
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.splitlines()[-1] == f"error: raw/{name}{where}: {rule}"
    assert "Traceback" not in err
    # No partial outputs: of the three, only the rejects list is written, naming what stopped the run.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rejects.json"]
    [entry] = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert entry["path"] == f"raw/{name}" and entry["rule"] == rule and entry["skipped"].startswith("none")


@pytest.mark.parametrize("name", sorted(CASES))
def test_on_error_skip_lists_the_reject_and_extracts_the_rest(tmp_path, monkeypatch, name):
    _, location, rule, skipped, kept = CASES[name]
    result = CliRunner().invoke(group, raw_folder(tmp_path, monkeypatch, "skip", name))
    assert result.exit_code == 0, result.output
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert rejects == [{"path": f"raw/{name}", **location, "rule": rule, "skipped": skipped}]
    blocks = [json.loads(line) for line in (tmp_path / "out" / "blocks.jsonl").open()]
    assert [b["source"] for b in blocks if b["source"].startswith("raw/good.md")] == [
        "raw/good.md#h=Explanation — Why the anode protects the cylinder"
    ]
    assert len([b for b in blocks if b["source"].startswith(f"raw/{name}#")]) == kept
    metrics = json.loads((tmp_path / "out" / "extract.json").read_text())
    assert metrics["rejected"] == {"files": int(skipped == "file"), "records": int(skipped == "record")}


def test_a_jsonl_file_that_starts_with_a_byte_order_mark_reads_every_record(tmp_path, monkeypatch):
    from finetune.documents.readers import file_blocks

    monkeypatch.chdir(tmp_path)
    shutil.copy(BAD.parent / "bom.jsonl", tmp_path / "bom.jsonl")
    _, blocks = file_blocks(Path("bom.jsonl"))
    assert [b["messages"][0]["content"] for b in blocks] == ["How long does priming take?", "Where is the vent screw?"]


def test_a_nul_character_escaped_in_a_chat_record_is_rejected_with_its_line(tmp_path, monkeypatch):
    from finetune.documents.readers import file_blocks

    monkeypatch.chdir(tmp_path)
    record = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a\\u0000b"}]}'
    (tmp_path / "chat.jsonl").write_text(record + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^chat.jsonl:1: message 1 \(assistant\) holds a NUL character$"):
        file_blocks(Path("chat.jsonl"))


def test_debug_shows_the_traceback_instead(tmp_path, monkeypatch):
    args = raw_folder(tmp_path, monkeypatch, "fail", "malformed.jsonl")
    with pytest.raises(InputError, match="malformed JSON"):
        main(["--debug", *args])


def test_skip_collects_every_bad_file_and_record_of_a_run(tmp_path, monkeypatch):
    result = CliRunner().invoke(group, raw_folder(tmp_path, monkeypatch, "skip", *CASES))
    assert result.exit_code == 0, result.output
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert sorted(r["path"] for r in rejects) == [f"raw/{name}" for name in sorted(CASES)]  # in file order
    assert [r["path"] for r in rejects] == sorted(r["path"] for r in rejects)


@pytest.mark.parametrize("name", sorted(CHAT_RULES))
def test_verify_data_reports_the_same_chat_problems_as_path_line(name):
    result = CliRunner().invoke(group, ["verify", "data", str(BAD / name)])
    assert result.exit_code == 1
    assert result.stdout == f"{BAD / name}:2: {CHAT_RULES[name]}\n"
    assert result.stderr.strip() == "3 examples, 1 problems"


def test_a_quoted_newline_in_a_catalog_is_part_of_its_cell_and_later_errors_name_the_right_line(tmp_path, monkeypatch):
    args = raw_folder(tmp_path, monkeypatch, "skip", "catalog_quoted_newline.csv")
    with (tmp_path / "raw" / "catalog_quoted_newline.csv").open("a") as f:
        f.write("AQ-160,Aquis,160,L,\n")  # line 7: the record before it spans lines 3-5
    result = CliRunner().invoke(group, args)
    assert result.exit_code == 0, result.output
    rows = [b for b in map(json.loads, (tmp_path / "out" / "blocks.jsonl").open()) if b["kind"] == "row"]
    assert [r["source"].split("#")[1] for r in rows] == ["row=1", "row=2", "row=3"]
    assert rows[1]["rows"][0]["name"] == "Brenntal Aquis AQ-120 hot-water cylinder"
    assert rows[1]["rows"][0]["informal_names"] == "aquis 120 litre; aq120 tank"
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert [(r["line"], r["row"], r["rule"]) for r in rejects] == [(7, 4, "has 5 fields, the header has 6")]


def test_every_csv_gives_row_blocks_whatever_its_columns(tmp_path, monkeypatch):
    """What a row is for (a product to name, a fault to diagnose) is the task file's business, not extract's."""
    args = raw_folder(tmp_path, monkeypatch, "fail")
    (tmp_path / "raw" / "faults.csv").write_text("Symptom,Cause,Remedy\nH1 sensor fault,Sensor open,Replace it\n")
    (tmp_path / "raw" / "aq400.csv").write_text("Parameter,Value,Unit\nRated volume,400,L\n")
    result = CliRunner().invoke(group, args)
    assert result.exit_code == 0, result.output
    blocks = {b["source"]: b for b in map(json.loads, (tmp_path / "out" / "blocks.jsonl").open())}
    assert blocks["raw/faults.csv#row=1"]["kind"] == blocks["raw/aq400.csv#row=1"]["kind"] == "row"
    assert blocks["raw/faults.csv#row=1"]["columns"] == ["Symptom", "Cause", "Remedy"]
    assert blocks["raw/aq400.csv#row=1"]["rows"] == [{"Parameter": "Rated volume", "Value": "400", "Unit": "L"}]
    assert blocks["raw/aq400.csv#row=1"]["title"] == "aq400"  # the subject of a SPEC question about it


@needs_tesseract
@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_an_image_tesseract_cannot_read_is_one_line_naming_it(tmp_path, monkeypatch, on_error):
    args = raw_folder(tmp_path, monkeypatch, on_error, "corrupt.png")
    result = CliRunner().invoke(group, args)
    if on_error == "fail":
        assert str(result.exception).startswith("raw/corrupt.png: OCR failed: tesseract says ")
        assert "\n" not in str(result.exception)
    else:
        [reject] = json.loads((tmp_path / "out" / "rejects.json").read_text())
        assert reject["path"] == "raw/corrupt.png" and reject["rule"].startswith("OCR failed")


@pytest.mark.parametrize("suffix", [".jsonl", ".md"])
def test_a_50_mb_line_is_rejected_while_streaming(tmp_path, monkeypatch, suffix):
    """The line is read 1 MB at a time and dropped: memory stays flat and it takes well under a second."""
    raw_folder(tmp_path, monkeypatch, "skip")
    good = json.dumps({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."}]})
    with (tmp_path / "raw" / f"huge{suffix}").open("wb") as f:
        f.write(b'{"messages": "')
        for _ in range(50):
            f.write(b"x" * (1 << 20))
        f.write(b'"}\n' + good.encode() + b"\n")
    assert (tmp_path / "raw" / f"huge{suffix}").stat().st_size > 50 << 20
    rejects: list = []
    tracemalloc.start()
    t0 = time.perf_counter()
    blocks, counts = run("raw", on_error="skip", rejects=rejects)
    seconds, (_, peak) = time.perf_counter() - t0, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rule = f"line longer than {MAX_LINE_BYTES:,} bytes: generated or binary data, not a document"
    # Only that line goes: in a JSONL file the record, in a document the line (its next line is text like any other).
    assert rejects == [{"path": f"raw/huge{suffix}", "line": 1, "rule": rule, "skipped": "record"}]
    kept = [b for b in blocks if "huge" in b["source"]]
    assert [b["source"] for b in kept] == (["raw/huge.jsonl#line=2"] if suffix == ".jsonl" else ["raw/huge.md#h=huge"])
    assert all("xxxx" not in b["text"] for b in kept)
    assert peak < 8 * MAX_LINE_BYTES, f"peak {peak:,} bytes"
    assert seconds < 5, f"{seconds:.1f} s"
    with pytest.raises(InputError, match=rf"^raw/huge\{suffix}:1: line longer than"):
        run("raw", on_error="fail")


SECRET = "sk-planted-4f1c9e-never-in-any-output"


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_link_out_of_the_data_folder_is_never_read(tmp_path, monkeypatch, capsys, on_error):
    """A secret planted outside the folder and linked in: fail names the link; skip lists it and extracts the rest;
    either way no output holds a byte of it (extract is the only stage that reads domains/heating/raw)."""
    outside = tmp_path / "elsewhere" / "credentials.md"
    outside.parent.mkdir()
    outside.write_text(f"# Keys\n\nThe deploy key is {SECRET}, keep it safe.\n", encoding="utf-8")
    args = raw_folder(tmp_path, monkeypatch, on_error)
    (tmp_path / "raw" / "notes.md").symlink_to(outside)
    rule = f"a symbolic link to {outside}, outside raw: copy the file in instead of linking it"
    if on_error == "fail":
        with pytest.raises(SystemExit):
            main(args)
        assert capsys.readouterr().err.splitlines()[-1] == f"error: raw/notes.md: {rule}"
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rejects.json"]
        assert SECRET not in (tmp_path / "out" / "rejects.json").read_text(encoding="utf-8")
        return
    main_result = CliRunner().invoke(group, args)
    assert main_result.exit_code == 0, main_result.output
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert rejects == [{"path": "raw/notes.md", "rule": rule, "skipped": "file"}]
    for out in (tmp_path / "out").iterdir():
        assert SECRET not in out.read_text(encoding="utf-8"), out
    assert SECRET not in main_result.output


def test_a_linked_secret_reaches_no_output_of_the_stages_after_extract_either(tmp_path, monkeypatch):
    """skip mode goes on: generate and balance run on what extract kept, and no file they write holds the secret."""
    outside = tmp_path / "elsewhere" / "credentials.md"
    outside.parent.mkdir()
    outside.write_text(f"# Keys\n\n## Explanation — Keys\n\nThe deploy key is {SECRET}, keep it safe.\n", "utf-8")
    args = raw_folder(tmp_path, monkeypatch, "skip")
    (tmp_path / "raw" / "notes.md").symlink_to(outside)
    main_result = CliRunner().invoke(group, args)
    assert main_result.exit_code == 0, main_result.output
    stages = [
        ["generate", "--input", "out/blocks.jsonl", "--output", "out/examples.jsonl", "--metrics", "out/generate.json",
         "--tasks", str(HEATING_TASKS)],
        ["balance", "--input", "out/examples.jsonl", "--train", "out/train.jsonl", "--val", "out/val.jsonl",
         "--metrics", "out/balance.json", "--plot", "out/dist.csv"],
    ]  # fmt: skip
    for stage in stages:
        result = CliRunner().invoke(group, [*stage, "--params", "params.yaml"])
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    written = sorted((tmp_path / "out").iterdir())
    assert {p.name for p in written} >= {"blocks.jsonl", "rejects.json", "examples.jsonl", "train.jsonl", "val.jsonl"}
    for out in written:
        assert SECRET not in out.read_text(encoding="utf-8"), out


def test_a_symlink_loop_and_a_dangling_link_are_named(tmp_path, monkeypatch):
    args = raw_folder(tmp_path, monkeypatch, "skip")
    (tmp_path / "raw" / "loop.md").symlink_to(tmp_path / "raw" / "loop.md")
    (tmp_path / "raw" / "gone.md").symlink_to(tmp_path / "raw" / "deleted.md")
    assert CliRunner().invoke(group, args).exit_code == 0
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert [(r["path"], r["rule"]) for r in rejects] == [
        ("raw/gone.md", "a symbolic link that points to nothing: remove it"),
        ("raw/loop.md", "a symbolic link that loops back on itself: remove it"),
    ]


def test_links_inside_the_folder_are_read_once(tmp_path, monkeypatch):
    args = raw_folder(tmp_path, monkeypatch, "fail")
    (tmp_path / "raw" / "sub").mkdir()
    shutil.copy(tmp_path / "raw" / "good.md", tmp_path / "raw" / "sub" / "other.md")
    (tmp_path / "raw" / "alias").symlink_to(tmp_path / "raw" / "sub")  # a folder: read where it really is
    assert CliRunner().invoke(group, args).exit_code == 0
    sources = [json.loads(line)["source"] for line in (tmp_path / "out" / "blocks.jsonl").open()]
    assert not any(s.startswith("raw/alias") for s in sources) and any(s.startswith("raw/sub/") for s in sources)


def test_an_extract_that_keeps_no_block_stops_with_one_line_and_still_lists_its_rejects(tmp_path, monkeypatch, capsys):
    args = raw_folder(tmp_path, monkeypatch, "skip", "empty.md", "corrupt.pdf")
    (tmp_path / "raw" / "good.md").unlink()
    with pytest.raises(SystemExit):
        main(args)
    said = capsys.readouterr().err.splitlines()[-1]
    assert said == "error: raw: no blocks: 0 files read, 2 files or records left out by extract.on_error: skip; " + (
        "add documents or fix the rejected ones"
    )
    # No blocks and no metrics, but the rejects file, which says why.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rejects.json"]
    rejects = json.loads((tmp_path / "out" / "rejects.json").read_text())
    assert [(r["path"], r["skipped"]) for r in rejects] == [("raw/corrupt.pdf", "file"), ("raw/empty.md", "file")]


STAGE_ARGS = {  # each stage that reads a JSONL, given a bad file where its input belongs
    "base": ["base", "--blocks", "{}", "--output", "out/base"],
    "generate": ["generate", "--input", "{}", "--output", "out/examples.jsonl", "--metrics", "out/g.json",
                 "--tasks", str(HEATING_TASKS)],
    "balance": ["balance", "--input", "{}", "--train", "out/t.jsonl", "--val", "out/v.jsonl",
                "--metrics", "out/b.json", "--plot", "out/b.csv"],
    "validate": ["validate", "--train", "{}", "--val", "{}", "--model", "tok", "--train-out", "out/tt.jsonl",
                 "--val-out", "out/vv.jsonl", "--metrics", "out/m.json", "--docs", "out/docs"],
}  # fmt: skip


@pytest.mark.parametrize(
    "stage", [*(s for s in STAGE_ARGS if s != "validate"), pytest.param("validate", marks=pytest.mark.slow)]
)
def test_no_stage_shows_a_traceback_on_any_bad_file(tmp_path, monkeypatch, capsys, stage):
    """Every file of tests/data/bad where a stage's JSONL input belongs: one line (or validate's report), exit 1."""
    from finetune.training.base_model import train_tokenizer

    monkeypatch.chdir(tmp_path)
    params = str(params_file(tmp_path / "params.yaml"))
    if stage == "validate":
        train_tokenizer(["user assistant system text"] * 4, vocab_size=300).save_pretrained(tmp_path / "tok")
    for bad in sorted(BAD.iterdir()):
        try:  # any exception but SystemExit is a traceback
            main([a.format(bad) for a in STAGE_ARGS[stage]] + ["--params", params])
            code = 0
        except SystemExit as stopped:
            code = stopped.code
        last = capsys.readouterr().err.strip().splitlines()[-1]
        if code == 0:  # an empty file: no blocks is a valid input for generate (REFUSAL only)
            assert stage == "generate" and bad.stat().st_size == 0, bad.name
            continue
        assert code == 1 and last.startswith(("error: ", "Error: validation failed")), (bad.name, last)


# A stray NUL byte early in a text file (inside the 8 KiB sniffed for binary data): the line or record holding it is
# the unit skip leaves out; the file is binary only when NULs are many or the bytes around them are not UTF-8.
STRAY_NUL = {
    "catalog.csv": (b"model_code,name\nCA-1,Calora one\nCA-2,Cal\0ora two\nCA-3,Calora three\n", "row", 2),
    "notes.txt": ((b"The first paragraph is long enough to be kept.\n\nA NUL \0 here.\n\nThe third one is long "
                   b"enough to be kept too.\n"), "para", 2),
    "chat.jsonl": ((b'{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."}]}\n'
                    b'{"messages": [{"role": "user", "content": "x\0"}]}\n'
                    b'{"messages": [{"role": "user", "content": "Bye?"}, {"role": "assistant", "content": "Bye."}]}\n'),
                   "line", 2),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(STRAY_NUL))
def test_a_stray_nul_byte_in_a_text_file_leaves_out_its_line_only(tmp_path, monkeypatch, name):
    content, unit, kept = STRAY_NUL[name]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / name).write_bytes(content)
    line = content[: content.index(b"\0")].count(b"\n") + 1
    with pytest.raises(InputError, match=rf"^raw/{name}:{line}: "):
        run("raw", on_error="fail")
    rejects: list[dict] = []
    blocks, _ = run("raw", on_error="skip", rejects=rejects)
    assert [(r["line"], r["skipped"]) for r in rejects] == [(line, "record")]
    assert len(blocks) == kept and all(f"#{unit}=" in b["source"] for b in blocks)
    assert not any("\0" in b["text"] for b in blocks)


def test_a_binary_file_is_still_one_file_to_leave_out():
    from finetune.documents.textfiles import looks_binary

    assert looks_binary((BAD / "binary.md").read_bytes())  # a PNG: NULs and bytes that are no UTF-8
    assert looks_binary("Calora".encode("utf-16-le"))  # a NUL every other byte
    assert not looks_binary(b"Calora one\nCal\0ora two\n") and not looks_binary(b"plain text")
