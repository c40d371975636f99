"""How many examples validate would call overlong, with generate's token-budget cut (generate --model) and without
it (extract's character cut alone), per corpus: the sample domains and the test corpora under tests/data/.

    python tests/benchmarks/token_budget.py                         # domains/* and tests/data/* with a task file
    python tests/benchmarks/token_budget.py --corpus domains/cli_tool --corpus tests/data/orrin_catalog

Each corpus is a folder as a domain is (raw/, tasks.yaml, params.yaml); extract and generate run on it into a
temporary folder, nothing of the repository is written. Overlong is counted as validate counts it: the base model's
tokenizer (models/base) over the chat template, against model.max_seq_len of params.yaml. Also printed: blocks,
examples per task, the blocks generate cut, what it left out, and every quality count that is not zero.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from finetune.params import load_params

ROOT = Path(__file__).resolve().parents[2]


def corpora() -> list[Path]:
    found = [*sorted((ROOT / "domains").iterdir()), *sorted((ROOT / "tests/data").iterdir())]
    return [p for p in found if (p / "raw").is_dir() and (p / "tasks.yaml").is_file()]


def _finetune(*args) -> None:
    exe = Path(sys.executable).with_name("finetune")
    done = subprocess.run([str(exe), *map(str, args)], check=False, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"finetune {args[0]} failed: {done.stderr.strip().splitlines()[-1]}")


def measure(corpus: Path, work: Path, model: Path | None) -> dict:
    params = ["--params", ROOT / "params.yaml", "--params", corpus / "params.yaml"]
    blocks = work / "blocks.jsonl"
    if not blocks.exists():
        extract = ["--output", blocks, "--metrics", work / "x.json", "--rejects", work / "r.json"]
        _finetune("extract", "--input", corpus.relative_to(ROOT) / "raw", *extract, *params)
    out = work / ("cut" if model else "guess")
    out.mkdir(exist_ok=True)
    _finetune(
        "generate", "--input", blocks, "--output", out / "examples.jsonl", "--tasks", corpus / "tasks.yaml",
        "--metrics", out / "generate.json", "--quality", out / "quality.json", *params,
        *(["--model", model] if model else []),
    )  # fmt: skip
    examples = [json.loads(line) for line in (out / "examples.jsonl").open(encoding="utf-8")]
    generated = json.loads((out / "generate.json").read_text())
    quality = json.loads((out / "quality.json").read_text())
    return {
        "blocks": sum(1 for _ in blocks.open()),
        "examples": len(examples),
        "per_task": generated["per_task"],
        "cut_to_fit": generated.get("cut_to_fit", 0),
        "dropped_over_budget": generated.get("dropped_over_budget", 0),
        "dropped_ambiguous": generated.get("dropped_ambiguous", 0),
        "quality": {k: v for k, v in quality.items() if v and not k.endswith("_of") and k != "examples"},
        "examples_list": examples,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", type=Path, help="a domain-like folder (repeatable); default all")
    ap.add_argument("--model", type=Path, default=ROOT / "models/base")
    args = ap.parse_args(argv)
    from finetune.training.models import load_tokenizer
    from finetune.validation.frames import count_tokens

    tokenizer = load_tokenizer(args.model)
    max_seq_len = load_params(ROOT / "params.yaml").model.max_seq_len
    rows = []
    with tempfile.TemporaryDirectory(prefix="token_budget_") as tmp:
        for corpus in [(ROOT / c).resolve() for c in args.corpus] if args.corpus else corpora():
            work = Path(tmp) / corpus.name
            work.mkdir()
            for label, model in (("extract.max_chars only", None), ("generate --model", args.model.resolve())):
                r = measure(corpus, work, model)
                lengths, _ = count_tokens(tokenizer, [e["messages"] for e in r.pop("examples_list")])
                r["overlong"] = sum(n is not None and n > max_seq_len for n in lengths)
                r["longest"] = max((n for n in lengths if n is not None), default=0)
                rows.append((corpus.relative_to(ROOT), label, r))
    print(f"model.max_seq_len {max_seq_len}, tokenizer {args.model}")
    for corpus, label, r in rows:
        tasks = ", ".join(f"{t} {n}" for t, n in r["per_task"].items())
        print(f"\n{corpus} — {label}")
        print(f"  blocks {r['blocks']}, examples {r['examples']} ({tasks})")
        print(
            f"  overlong (validate) {r['overlong']}, longest {r['longest']} tokens; cut_to_fit {r['cut_to_fit']}, ",
            end="",
        )
        print(f"dropped_over_budget {r['dropped_over_budget']}, dropped_ambiguous {r['dropped_ambiguous']}")
        print(f"  quality: {r['quality'] or 'nothing flagged'}")


if __name__ == "__main__":
    main()
