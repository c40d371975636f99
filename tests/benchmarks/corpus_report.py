"""Measure what a pipeline run made of a corpus: blocks per kind, examples per task, rejects by reason, the share of
answers grounded in their source block, the validate result and baseline vs fine-tuned ROUGE-L.

    python tests/benchmarks/corpus_report.py [REPO_DIR]      # a repository after `dvc repro` (default: this one)

An answer counts as grounded when at least 90% of its words (letters and digits, case folded) occur in the text of
the block it was built from. REFUSAL answers come from params, not a block, and are counted apart.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str) -> list[str]:
    return [w.casefold() for w in WORD.findall(text)]


def block_text(block: dict) -> str:
    parts = [block.get("title", ""), block.get("lead", ""), block.get("text", "")]  # a code example keeps its lead
    parts += [" ".join(map(str, r.values())) for r in block.get("rows") or []]
    parts += [m.get("content", "") for m in block.get("messages") or []]
    return " ".join(parts)


def grounded(answer: str, source: str, floor: float = 0.9) -> bool:
    said, there = words(answer), set(words(source))
    return bool(said) and sum(w in there for w in said) / len(said) >= floor


def main(root: Path) -> None:
    read = lambda rel: [json.loads(line) for line in (root / rel).open(encoding="utf-8") if line.strip()]  # noqa: E731
    blocks = {b["id"]: b for b in read("data/interim/heating/blocks.jsonl")}
    examples = read("data/interim/heating/examples.jsonl")
    kinds = Counter(b["kind"] for b in blocks.values())
    print("blocks:", len(blocks), dict(sorted(kinds.items())))
    print("examples:", len(examples), dict(sorted(Counter(e["task"] for e in examples).items())))
    rejects = json.loads((root / "metrics/rejects/heating.json").read_text())
    print("rejects:", dict(Counter(r["rule"] for r in rejects)) or "none")
    per_task: dict[str, list[bool]] = defaultdict(list)
    for e in examples:
        if e["task"] == "REFUSAL" or e.get("block_id") not in blocks:
            continue
        per_task[e["task"]].append(grounded(e["messages"][-1]["content"], block_text(blocks[e["block_id"]])))
    flat = [g for gs in per_task.values() for g in gs]
    share = sum(flat) / len(flat) if flat else 0.0
    print(
        f"grounded: {sum(flat)}/{len(flat)} = {share:.1%};",
        {t: f"{sum(g)}/{len(g)}" for t, g in sorted(per_task.items())},
    )
    validation = json.loads((root / "metrics/validation/heating.json").read_text())
    failed = [k for k, v in validation["expectations"].items() if not v["success"]]
    print(f"validate: {'passed' if validation['success'] else 'FAILED ' + ', '.join(failed)};",
          f"train {validation['n_train']}, val {validation['n_val']}")  # fmt: skip
    ev = root / "metrics/eval/heating.json"
    if ev.exists():
        result = json.loads(ev.read_text())
        b, f = result["baseline"]["overall"]["rouge_l"], result["finetuned"]["overall"]["rouge_l"]
        print(f"ROUGE-L overall: baseline {b:.3f} -> fine-tuned {f:.3f}")
        for task in sorted(t for t in result["finetuned"] if t != "overall"):
            bt, ft = result["baseline"][task]["rouge_l"], result["finetuned"][task]["rouge_l"]
            print(f"  {task:16} n={result['finetuned'][task]['n']:4}  {bt:.3f} -> {ft:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
