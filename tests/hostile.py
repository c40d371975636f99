"""A corpus of hostile documents, built as an attacker would craft them (nothing of it is committed): deep nesting,
a 10,000-turn conversation, lines past the limit in every format, terminal escapes and newlines in headings and file
names, broken and bloated PDFs, NUL bytes, links out of the folder, a named pipe.

`build(root)` writes root/raw/ (and root/outside/, the target of a link that must never be read) and returns what
each file is for: KEPT files are read (their hostile part made harmless), the others are rejected, each with one line
naming it. tests/test_hostile.py runs every data stage on it; tests/benchmarks/bench_hostile.py measures it.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

GOOD_MD = """\
# Aquis

## Explanation — Why the anode protects the cylinder

The magnesium anode corrodes instead of the cylinder wall, so it is checked every two years.
"""
SECRET = "sk-planted-hostile-never-in-any-output"
ANSI = "\x1b[31;1m"  # colour
OSC = "\x1b]0;pwned\x07"  # sets the terminal window's title
FAKE = "\n[extract] 999 blocks from 1 files -> all good\n"  # a newline in a name would print this as a line of its own
TURNS = 10_000


def _pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for text in pages:
        pdf.add_page()
        pdf.cell(0, 6, text)
    return bytes(pdf.output())


def _bloated_pdf(inflated: int) -> bytes:
    """A PDF whose one page's content stream is `inflated` bytes of repeated text drawing, ~1000:1 compressed."""
    content = zlib.compress(b"BT /F1 10 Tf 10 10 Td (x) Tj ET\n" * (inflated // 32), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def long_chat(turns: int = TURNS) -> str:
    """One JSONL record of `turns` alternating turns (~75 bytes each: 751 KB for 10,000)."""
    messages = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n:05d}: " + "word " * 10}
        for n in range(turns)
    ]
    return json.dumps({"messages": messages}) + "\n"


def files(big: int) -> dict[str, bytes]:
    """name -> content of every plain file; `big` is the size of the files over the line limit."""
    deep = 10_000
    record = {"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a."}]}
    return {
        "good.md": GOOD_MD.encode(),
        # Deep nesting, in every format that nests.
        "deep_divs.html": ("<html><body>" + "<div>" * deep + "text " * 20 + "</div>" * deep).encode(),
        "deep_inline.html": ("<h1>T</h1><p>" + "<b>" * deep + "text " * 20).encode(),
        "deep_markdown.md": ("# Deep\n\n" + "> " * deep + "quoted " * 10 + "\n\n" + "<div>" * deep + "x\n").encode(),
        "deep_lists.md": ("# Lists\n\n" + "".join("  " * n + "- item\n" for n in range(2000))).encode(),
        "deep_record.jsonl": (json.dumps(record)[:-1] + ', "x": ' + "[" * deep + "]" * deep + "}\n").encode(),
        "deep_element.json": ("[" + "[" * deep + "]" * deep + "]").encode(),
        "deep_role.jsonl": ('{"messages": [{"role": ' + "[" * 900 + "]" * 900 + ', "content": "x"}]}\n').encode(),
        # Cost: a small file that generation would blow up.
        "long_chat.jsonl": long_chat().encode(),
        # The line limit, in every format.
        "huge_line.txt": b"a" * big,
        "huge_line.md": b"# Title\n\n" + b"b" * big + b"\n",
        "huge_line.csv": b"name,value\nx," + b"c" * big + b"\n",
        "huge_line.jsonl": b'{"messages": "' + b"d" * big + b'"}\n',
        "minified.json": ("[" + ",".join([json.dumps(record)] * (big // 80)) + "]").encode(),
        "huge_field.csv": b'name,value\nx,"' + b"e\n" * 100_000 + b'"\n',  # past csv's 131,072-character field limit
        # Escapes and line breaks for the terminal, in headings and content.
        "ansi_heading.md": f"# Manual\n\n## {ANSI}Red{OSC} heading\n\n{GOOD_MD.splitlines()[-1]}\n".encode(),
        "ansi_duplicate.md": (
            f"# Dup\n\n## {OSC}Same\n\nThe same paragraph of text, long enough to keep.\n" * 2
        ).encode(),
        "bidi_heading.md": "# Doc\n\n## \u202eevil\u202c heading\n\nText long enough to be kept as a section here.\n".encode(),
        "ansi_chat.jsonl": json.dumps(
            {"messages": [{"role": "user", "content": f"{ANSI}hi{OSC}"}, {"role": "assistant", "content": "ok."}]}
        ).encode(),
        "ansi_bad_record.jsonl": (json.dumps(record) + "\n" + f'{{"oops{ANSI}{OSC}": 1}}\n').encode(),
        # Repetition: one section 20,000 times, every copy a duplicate block.
        "repeated.md": (
            "# Rep\n\n" + "## Same\n\nThe same paragraph, over and over, long enough to keep.\n\n" * 20_000
        ).encode(),
        # Binary data and encodings.
        "nul.md": b"# N\n\x00\x00\x00\x00binary\x00\x00",
        "utf16.txt": "Text saved as UTF-16 by a Windows editor, long enough.".encode("utf-16"),
        "invalid_utf8.txt": b"\xff\xfe\xfa not UTF-8 at all \xc3\x28\n",
        "bom_only.md": "\ufeff".encode(),
        "empty.csv": b"",
        "whitespace.txt": b"   \n\n\t\n",
        "image.png": os.urandom(2048),
        "slides.pptx": b"PK\x03\x04",
        # Broken and bloated PDFs.
        "truncated.pdf": _pdf(["A page of text long enough to be kept as a section."])[:-60],
        "not_a.pdf": b"%PDF-1.4\nthis is no PDF at all\n",
        "bloated.pdf": _bloated_pdf(200_000_000),
        # Names a terminal would act on: each file is bad, so its name is printed.
        f"{ANSI}red{OSC}.md": b"",
        f"fake{FAKE}.md": b"",
        "\u202etxt.exe.md": b"",
    }


# Files read whole, their hostile part made harmless; every other file of the corpus is listed once in the rejects
# (left out whole, or its one bad record, line or page: the bloated PDF's page is over pypdf's decompression limit).
KEPT = {"good.md", "long_chat.jsonl", "ansi_heading.md", "ansi_duplicate.md", "bidi_heading.md", "ansi_chat.jsonl",
        "repeated.md", "deep_lists.md"}  # fmt: skip


def build(root: Path, big: int = 2_000_000) -> dict[str, str]:
    """Write the corpus to root/raw; {file name: "kept" | "rejected"}."""
    root = root.resolve()
    raw = root / "raw"
    raw.mkdir(parents=True)
    kinds = {}
    for name, content in files(big).items():
        (raw / name).write_bytes(content)
        kinds[name] = "kept" if name in KEPT else "rejected"
    outside = root / "outside" / "secret.md"
    outside.parent.mkdir()
    outside.write_text(f"# Keys\n\n## Explanation — Keys\n\nThe deploy key is {SECRET}, keep it safe.\n")
    (raw / "link_out.md").symlink_to(outside)
    (raw / "link_loop.md").symlink_to(raw / "link_loop.md")
    os.mkfifo(raw / "pipe.md")  # opening it to read would wait forever for a writer
    bad_name = os.fsencode(raw) + b"/latin1_\xe9t\xe9.md"  # not UTF-8: no JSON output could hold it
    with open(bad_name, "wb") as f:
        f.write(GOOD_MD.encode())
    kinds |= {"link_out.md": "rejected", "link_loop.md": "rejected", "pipe.md": "rejected"}
    kinds[os.fsdecode(bad_name).rsplit("/", 1)[1]] = "rejected"
    return kinds


def run_stage(argv: list[str], cwd: Path) -> tuple[int, str, int]:
    """Run the `finetune` console script as its own process: (exit code, stderr, peak resident memory in bytes).

    Measured by /usr/bin/time where there is one: a child forked from a big process (pytest, this corpus's builder)
    counts the parent's memory in its own ru_maxrss until it execs, so wait4's figure would be the parent's."""
    import shutil
    import subprocess
    import sys
    import tempfile

    exe = str(Path(sys.executable).with_name("finetune"))
    timer = shutil.which("time", path="/usr/bin")
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        cmd = [timer, "-f", "%M", "-o", str(peak_file), exe, *argv] if timer else [exe, *argv]
        with (Path(tmp) / "err").open("w+b") as err:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        peak = int(peak_file.read_text().split()[-1]) * 1024 if timer else usage.ru_maxrss * 1024
    return proc.returncode, text, peak


def stage_args(tasks: Path, params: Path) -> dict[str, list[str]]:
    """The arguments of each data stage after extract, on root/out/ (validate's --model is added by the caller)."""
    p = ["--params", str(params)]
    return {
        "generate": ["generate", "--input", "out/blocks.jsonl", "--output", "out/examples.jsonl",
                     "--metrics", "out/generate.json", "--tasks", str(tasks), *p],
        "balance": ["balance", "--input", "out/examples.jsonl", "--train", "out/train.jsonl", "--val", "out/val.jsonl",
                    "--metrics", "out/balance.json", "--plot", "out/dist.csv", *p],
        "validate": ["validate", "--train", "out/train.jsonl", "--val", "out/val.jsonl", "--train-out",
                     "out/checked/train.jsonl", "--val-out", "out/checked/val.jsonl", "--metrics",
                     "out/validation.json", "--docs", "out/docs", *p],
    }  # fmt: skip


EXTRACT = ["extract", "--input", "raw", "--output", "out/blocks.jsonl", "--metrics", "out/extract.json",
           "--rejects", "out/rejects.json"]  # fmt: skip
