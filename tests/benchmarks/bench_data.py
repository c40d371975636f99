"""Data-stage benchmark, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_data.py                    # a corpus 100x the sample, in a temporary folder
    python tests/benchmarks/bench_data.py --scale 10 --workdir /tmp/bench --model models/base

Copies domains/heating/raw `--scale` times with every family, brand and model code renamed per copy (`Calora` -> `Calora07`,
`CA-24C` -> `CA-0724C`), so sources, ids and prompts all differ as in a real corpus of that size, then times the
stage functions as `dvc repro` runs them (reading and writing their files): extract, generate, balance, validate.
Last, validate on 100k examples (every phrasing of every fact, unbalanced) including tokenisation under the chat
template; the target is 60 s. The tokenizer is models/base, or one `finetune base` builds in the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.documents import corpus, readers
from finetune.generation import examples as generation
from finetune.generation import splits
from finetune.io import load_jsonl, write_json, write_jsonl
from finetune.params import load_params
from finetune.validation import expectations

# With the misspellings customers use in the catalog's informal names.
FAMILIES = re.compile(r"\b(Calora|Solvia|Pell?ora|Vent[ae]ro|Radd?ix|Aquis|Brenn?tal)", re.IGNORECASE)
CODES = re.compile(r"\b(CA|SV|PL|VT|RX|AQ)-(?=\w)", re.IGNORECASE)  # CA-24C, ca-18s
INFORMAL_CODES = re.compile(r"\b(ca|sv|pl|vt|rx|aq)(?=\d)")  # ca20c, aq120
TARGET_EXAMPLES = 100_000


def rename(text: str, k: int) -> str:
    tag = f"{k:02d}"
    text = FAMILIES.sub(lambda m: m[1] + tag, text)
    text = CODES.sub(lambda m: f"{m[1]}-{tag}", text)
    return INFORMAL_CODES.sub(lambda m: m[1] + tag, text)


def rename_jsonl(text: str, k: int) -> str:
    """rename(), and a question that names no product (the family is only in the answer) gets the copy's site."""
    out = []
    for line in rename(text, k).splitlines():
        obj = json.loads(line) if line.strip() else None
        turn = next(iter(obj.get("messages") or obj.get("conversations") or [obj]), {}) if obj else {}
        key = next((f for f in ("content", "value", "instruction") if isinstance(turn.get(f), str)), None)
        if key and f"{k:02d}" not in turn[key]:
            turn[key] += f" (site {k:02d})"
        out.append(json.dumps(obj, ensure_ascii=False) if obj else line)
    return "\n".join(out) + "\n"


def pdf_copy(pages: list[list[str]], k: int, path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 6, rename(line, k), new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def build_corpus(raw: Path, out: Path, scale: int) -> int:
    """`scale` renamed copies of every text and PDF file under raw; scanned pages are left out (OCR is timed apart,
    and a renamed copy of a scan would have to be drawn again). Returns the bytes written."""
    from pypdf import PdfReader

    files = sorted(p for p in raw.rglob("*") if p.is_file() and readers.FORMATS.get(p.suffix.lower()) != "image")
    pdf_pages = {
        p: [page.extract_text().splitlines() for page in PdfReader(p).pages] for p in files if p.suffix == ".pdf"
    }
    for k in range(scale):
        folder = out / f"copy{k:03d}"
        folder.mkdir(parents=True)
        for p in files:
            if p in pdf_pages:
                pdf_copy(pdf_pages[p], k, folder / p.name)
            else:
                copy = rename_jsonl if p.suffix == ".jsonl" else rename
                (folder / p.name).write_text(copy(p.read_text(encoding="utf-8"), k), encoding="utf-8")
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def timed(label: str, n_label: str, fn):
    t0 = time.perf_counter()
    result, n = fn()
    seconds = time.perf_counter() - t0
    print(f"{label:<22} {n:>8,} {n_label:<9} {seconds:7.2f} s  {n / seconds:>10,.0f} {n_label}/s", flush=True)
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100, help="copies of domains/heating/raw (default 100)")
    parser.add_argument("--workdir", type=Path, help="keep the corpus and outputs here (default: a temporary folder)")
    parser.add_argument("--model", type=Path, help="tokenizer folder (default: models/base, else built here)")
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_data."))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # sources are paths relative to the working directory, as under DVC
    params = load_params(REPO / "params.yaml")
    from finetune.training.models import load_tokenizer

    try:
        t0 = time.perf_counter()
        size = build_corpus(REPO / "data" / "raw", Path("raw"), args.scale)
        n_files = sum(1 for p in Path("raw").rglob("*") if p.is_file())
        print(f"corpus: {args.scale}x the sample, {n_files} files, {size / 1e6:.1f} MB in {work} "
              f"(built in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
        print(f"{'stage':<22} {'items':>8} {'':<9} {'time':>9}  {'throughput':>10}")

        def run_extract():
            blocks, counts = corpus.run("raw", params.extract.min_chars)
            write_jsonl("interim/blocks.jsonl", blocks)
            write_json("metrics/extract/heating.json", counts)
            return blocks, len(blocks)

        blocks, _ = timed("extract", "blocks", run_extract)
        scans = sorted(
            p for p in (REPO / "data" / "raw").rglob("*") if readers.FORMATS.get(p.suffix.lower()) == "image"
        )
        for scan in scans:
            timed(f"  OCR {scan.name}", "blocks", lambda scan=scan: (None, len(readers.file_blocks(scan)[1])))

        model = args.model or (REPO / "models" / "base")
        if not (model / "tokenizer.json").exists():
            model = Path("base")
            print(f"building a tokenizer and base model with `finetune base` (default params) in {work / model}")
            cmd = ["finetune", "base", "--blocks", "interim/blocks.jsonl", "--output", str(model)]
            subprocess.run([*cmd, "--params", str(REPO / "params.yaml")], check=True)

        def run_generate():
            examples = generation.run(load_jsonl("interim/blocks.jsonl"), params.generate)
            write_jsonl("interim/examples.jsonl", examples)
            return examples, len(examples)

        timed("generate", "examples", run_generate)

        def run_balance():
            examples = load_jsonl("interim/examples.jsonl")
            train, val, report = splits.run(examples, params.balance, params.split)
            write_jsonl("processed/train.jsonl", train)
            write_jsonl("processed/val.jsonl", val)
            write_json("metrics/balance/heating.json", report)
            return (train, val), len(examples)

        (train, val), _ = timed("balance", "examples", run_balance)
        print(f"  -> train {len(train):,} (balanced to max_ratio {params.balance.max_ratio}), val {len(val):,}")
        # The arguments stages/validate.py passes, from the same params.
        vparams = {
            "tasks": params.generate.tasks,
            "max_seq_len": params.model.max_seq_len,
            "max_ratio": params.balance.max_ratio,
            "val_fraction": params.split.val_fraction,
            "tolerance": params.validate_.val_fraction_tolerance,
        }
        t0 = time.perf_counter()
        expectations.checks(**vparams)  # imports great_expectations
        load_tokenizer(model)  # imports transformers
        print(f"  (imports of GE and transformers, once per process: {time.perf_counter() - t0:.1f} s, not counted)")

        def run_validate(train_path, val_path, **overrides):
            n = count_lines(train_path) + count_lines(val_path)
            metrics, _ = expectations.run(
                train_path,
                val_path,
                model,
                "metrics/validation/heating.json",
                "reports/heating/validation",
                **{**vparams, **overrides},
            )
            failed = [k for k, e in metrics["expectations"].items() if not e["success"]]
            return failed, n

        failed, _ = timed(
            "validate",
            "examples",
            lambda: run_validate("processed/train.jsonl", "processed/val.jsonl"),
        )
        print(f"  -> failed expectations: {', '.join(failed) or 'none'}")

        # 100k examples: every phrasing of every fact (3 for most tasks), a seeded sample of 100k of them, split by
        # source but not balanced (hence no task-ratio limit below).
        examples = generation.run(blocks, params.generate.model_copy(update={"phrasings_per_item": 3}))
        if len(examples) > TARGET_EXAMPLES:
            examples = random.Random(0).sample(examples, TARGET_EXAMPLES)
        train, val = splits.split(examples, params.split.val_fraction, params.split.seed)
        write_jsonl("big/examples.jsonl", examples)
        write_jsonl("big/train.jsonl", train)
        write_jsonl("big/val.jsonl", val)
        print(f"validate on {len(train) + len(val):,} examples (train {len(train):,}, val {len(val):,}), "
              f"target {TARGET_EXAMPLES:,} in <= 60 s:")  # fmt: skip
        failed, seconds = timed(
            "validate 100k",
            "examples",
            lambda: run_validate("big/train.jsonl", "big/val.jsonl", max_ratio=1e9),
        )
        print(f"  -> failed expectations: {', '.join(failed) or 'none'}; {'within' if seconds <= 60 else 'OVER'} 60 s")
    finally:
        if args.workdir is None:
            os.chdir(REPO)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
