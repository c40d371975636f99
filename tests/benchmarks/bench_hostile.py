"""Hostile-input benchmark, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_hostile.py                  # in a temporary folder
    python tests/benchmarks/bench_hostile.py --big 20000000 --workdir /tmp/hostile

Builds the hostile corpus (tests/hostile.py; --big: the size of the files over the line limit, 20 MB as in issue 22),
then runs `finetune extract` as its own process on each file beside one good document, with extract.on_error fail
and skip, and prints per file: exit code, the one line that names it, peak resident memory. Then the whole corpus in
skip mode through generate, balance and validate (on a tiny base `finetune base` builds here), with the 10,000-turn
conversation's example count and examples.jsonl size: no stage may go over 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.io import printable
from tests.conftest import HEATING_TASKS, TINY_BLOCKS, params_file, repo_params, shrink, write_params
from tests.hostile import EXTRACT, GOOD_MD, build, run_stage, stage_args

MB = 1 << 20


def copy_entry(src: Path, dst: Path) -> None:
    """One entry of the corpus as it is: a link stays a link, a named pipe a named pipe."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif not src.is_file():
        os.mkfifo(dst)
    else:
        shutil.copyfile(src, dst)


def said_about(err: str, name: str) -> str:
    """The line of stderr that names the file: the error, or the skipped line; else the last line."""
    lines = err.strip().splitlines()
    shown = printable("raw/" + os.fsencode(name).decode("utf-8", "backslashreplace"))
    named = [ln for ln in lines if ln.startswith(("error:", "[extract] skipped file", "[extract] skipped record"))]
    return next((ln for ln in named if shown in ln), lines[-1] if lines else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=20_000_000)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hostile-"))
    kinds = build(work / "all", args.big)
    entries = sorted(os.listdir(os.fsencode(work / "all" / "raw")))
    print(f"corpus: {len(entries)} files in {work / 'all' / 'raw'}\n")
    print(f"{'file':32} {'mode':4} {'rc':>2} {'MB':>5}  message")
    worst = 0
    for raw_name in entries:
        name = os.fsdecode(raw_name)
        if name == "good.md":
            continue
        for mode in ("fail", "skip"):
            one = work / "one"
            shutil.rmtree(one, ignore_errors=True)
            (one / "raw").mkdir(parents=True)
            (one / "raw" / "good.md").write_text(GOOD_MD, encoding="utf-8")
            copy_entry(Path(os.fsdecode(os.fsencode(work / "all" / "raw") + b"/" + raw_name)),
                       Path(os.fsdecode(os.fsencode(one / "raw") + b"/" + raw_name)))  # fmt: skip
            p = params_file(one / "params.yaml", {"extract": {"on_error": mode}})
            rc, err, peak = run_stage([*EXTRACT, "--params", str(p)], one)
            worst = max(worst, peak)
            assert "Traceback" not in err, err
            label = printable(os.fsencode(name).decode("utf-8", "backslashreplace"))[:32]
            print(f"{label:32} {mode:4} {rc:>2} {peak / MB:5.0f}  {said_about(err, name)[:150]}")

    print("\nthe whole corpus, extract.on_error: skip, then every data stage:")
    root = work / "all"
    base_params = write_params(work / "base-params.yaml", shrink(repo_params()))
    blocks = work / "tiny-blocks.jsonl"
    blocks.write_text("".join(json.dumps(b) + "\n" for b in TINY_BLOCKS), encoding="utf-8")
    rc, err, _ = run_stage(["base", "--blocks", str(blocks), "--output", str(work / "base"), "--params",
                            str(base_params)], work)  # fmt: skip
    assert rc == 0, err
    p = params_file(
        root / "params.yaml", {"extract": {"on_error": "skip"}, "generate": {"tasks": ["SECTION", "QA", "REFUSAL"]}}
    )
    runs = {"extract": [*EXTRACT, "--params", str(p)], **stage_args(HEATING_TASKS, p)}
    runs["validate"] += ["--model", str(work / "base")]
    for stage, argv in runs.items():
        rc, err, peak = run_stage(argv, root)
        worst = max(worst, peak)
        lines = err.strip().splitlines()
        print(f"{stage:9} rc {rc}  {peak / MB:5.0f} MB  {printable(lines[-1] if lines else '')[:150]}")
    examples = root / "out" / "examples.jsonl"
    chat = sum('"source": "raw/long_chat.jsonl' in line for line in examples.open(encoding="utf-8"))
    print(f"\n10,000-turn conversation: {chat} examples; examples.jsonl {examples.stat().st_size / MB:.1f} MB in all")
    print(f"peak memory of any stage run: {worst / MB:.0f} MB (goal: under 1,024)")
    print(f"kept: {sorted(n for n, k in kinds.items() if k == 'kept')}")


if __name__ == "__main__":
    main()
