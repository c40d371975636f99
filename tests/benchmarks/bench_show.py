"""How wide DVC prints the metrics, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_show.py                 # this repository, as it stands (a run's outputs needed)
    python tests/benchmarks/bench_show.py --repo /tmp/run --columns 120

Runs what a new user tries first in a terminal `--columns` wide and prints, per command, its lines, its widest line
and whether the first screen (the first `--columns` characters of each line: what `less -S`, DVC's pager, shows
before one scrolls right) holds an elided `…` cell, and for `dvc exp show` the column names on it: `dvc metrics show`, plain `dvc exp show` (the whole table into
the pager) and `dvc exp show --no-pager` (the table squeezed to the terminal). Then how many columns `dvc exp show`
has of each kind (`--json`). `dvc exp show` reads committed metrics too: commit a changed dvc.yaml before measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], repo: Path, columns: int) -> str:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, check=True).stdout


def columns_of(tree: dict) -> int:
    """Leaf keys of a {file: {"data": {...}}} mapping, as DVC flattens them into columns."""

    def leaves(d) -> int:
        return sum(leaves(v) for v in d.values()) if isinstance(d, dict) else 1

    return sum(leaves(f.get("data", {})) for f in tree.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--columns", type=int, default=120)
    args = parser.parse_args()

    commands = {
        "dvc metrics show": ["dvc", "metrics", "show"],
        "dvc exp show": ["dvc", "exp", "show"],
        "dvc exp show --no-pager": ["dvc", "exp", "show", "--no-pager"],
    }
    for name, command in commands.items():
        lines = run(command, args.repo, args.columns).splitlines()
        screen = [line[: args.columns] for line in lines]
        elided = any("…" in line for line in screen)
        widest = max(map(len, lines), default=0)
        print(f"{name:26} {len(lines):3} lines, widest {widest:6}, first screen elided: {elided}")
        if name != "dvc metrics show" and len(screen) > 1:
            print(f"    first screen's columns: {' | '.join(screen[1].split())}")
    (baseline, *_) = json.loads(run(["dvc", "exp", "show", "--json"], args.repo, args.columns))
    data = baseline["data"]
    counts = {kind: columns_of(data[kind]) for kind in ("metrics", "params")}
    print(f"dvc exp show columns: {counts['metrics']} metrics, {counts['params']} params, {len(data['deps'])} deps")


if __name__ == "__main__":
    sys.exit(main())
