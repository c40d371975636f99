"""A domain of N scanned pages (300 by default) through the whole pipeline in a fresh copy of the repository: the
seconds of each stage, the blocks and examples it made, and what extract's rerun costs after one page changed.

    python tests/benchmarks/bench_scanned_domain.py --pages 300 [--workdir /tmp/scanned]

The pages are our manual (tests/benchmarks/bench_pages.py) at 200 dpi, the last two as an image-only PDF, with the
slow test's task file and params (tests/test_scanned_domain.py); params are the test suite's FAST set (a smaller
base, 5 optimiser steps), so the figures are about the data stages, not about training. A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.bench_pages import manual_page, render  # noqa: E402
from tests.dvcrepo import FAST, copy_repo, env_for  # noqa: E402
from tests.test_scanned_domain import scanned_domain  # noqa: E402

DOMAIN = "manuals"


def repro(repo: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(["dvc", "repro", *args], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"dvc repro {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--workdir", type=Path, help="kept afterwards (default: a temporary folder)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scanned_"))
    repo = copy_repo(work / "repo", FAST, domains={DOMAIN: {"init_from": "base"}})
    scanned_domain(repo / f"domains/{DOMAIN}", args.pages)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, capture_output=True)
    print(f"{args.pages} scanned pages (200 dpi) in domains/{DOMAIN}/raw; FAST params; {work}")
    # Stage by stage, so each has its own time: dvc repro -s runs one stage (its deps are already done).
    stages = ["base", *(f"{s}@{DOMAIN}" for s in ("extract", "generate", "balance", "validate", "train",
              "baseline", "evaluate", "report", "interference")), "compare"]  # fmt: skip
    total = 0.0
    for stage in stages:
        seconds, _ = repro(repo, "-s", stage)
        total += seconds
        print(f"  {stage:<24} {seconds:7.1f} s")
    print(f"  {'whole pipeline':<24} {total:7.1f} s")
    extract = json.loads((repo / f"metrics/extract/{DOMAIN}.json").read_text())
    generate = json.loads((repo / f"metrics/generate/{DOMAIN}.json").read_text())
    rejects = json.loads((repo / f"metrics/rejects/{DOMAIN}.json").read_text())
    kinds = {k: n for k, n in extract["blocks"].items() if n}
    print(f"blocks: {kinds}; rejects: {len(rejects)}")
    print(f"examples: {generate['examples']}, per task {generate['per_task']}")
    headline = json.loads((repo / "metrics/headline.json").read_text())
    print("headline:", {k: round(v, 3) for k, v in headline.items()})
    # One page changed: the rerun's extract reads that page only (the rest from extract.cache).
    page = repo / f"domains/{DOMAIN}/raw/page_{args.pages // 2:02d}.png"
    render([*manual_page(args.pages // 2), "Revised by the service team."], 200).save(page, dpi=(200, 200))
    seconds, out = repro(repo, "-s", f"extract@{DOMAIN}")
    cached = re.search(r"\d+ of \d+ files from the cache", out)
    print(f"extract after one changed page: {seconds:.1f} s ({cached.group(0) if cached else 'no cache line'})")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
