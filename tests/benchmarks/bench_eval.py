"""Evaluation-throughput benchmark, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_eval.py                      # models/base + models/heating + val from `dvc repro`
    python tests/benchmarks/bench_eval.py --batch-sizes 1 8 32 --examples 64

Generates greedy answers for the val examples with the adapter merged into the base, exactly as the evaluate stage
does (finetune.training.models.load_merged + finetune.evaluation.inference.generate, `eval.max_new_tokens`), once per batch size, and prints
examples/s and generated tokens/s for each, plus the speed-up of batching over one-by-one. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.io import load_jsonl
from finetune.params import load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models/base"))
    ap.add_argument("--adapter", default=str(REPO / "models/heating"))
    ap.add_argument("--val", default=str(REPO / "data/processed/heating/val.jsonl"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--examples", type=int, default=None, help="first N val examples (default: all)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()

    missing = [p for p in (args.model, args.adapter, args.val) if not Path(p).exists()]
    if missing:
        sys.exit(f"missing: {', '.join(missing)}; run `dvc repro evaluate` first (or pass --model/--adapter/--val)")

    import torch

    from finetune.chat import prompt_messages
    from finetune.evaluation.inference import generate
    from finetune.training.models import load_merged, load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    examples = load_jsonl(args.val)[: args.examples]
    prompts = [prompt_messages(e) for e in examples]
    tokenizer = load_tokenizer(args.model, params.model.trust_remote_code)
    model = load_merged(args.model, args.adapter, params.model)
    max_new = params.eval.max_new_tokens
    generate(model, tokenizer, prompts[:2], 2, 4, "warm-up")  # first-call allocations out of the timings

    rows = {}
    for bs in args.batch_sizes:
        t0, c0 = time.perf_counter(), time.process_time()
        out = generate(model, tokenizer, prompts, bs, max_new, f"batch {bs}")
        # CPU seconds beside wall seconds: on a shared machine the first counts only this process's work.
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        new_tokens = sum(r["new_tokens"] for r in out)
        rows[bs] = {"seconds": seconds, "ex_s": len(out) / seconds, "tok_s": new_tokens / seconds, "new": new_tokens}
        rows[bs].update(cpu=cpu, ex_cpu_s=len(out) / cpu)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"\neval throughput: {args.model} + {args.adapter} (merged), {len(examples)} val examples, greedy, "
        f"max_new_tokens {max_new}, {device}, torch {torch.__version__}"
    )
    print(
        f"{'batch':>5} {'seconds':>8} {'examples/s':>11} {'new tokens':>11} {'gen tokens/s':>13} "
        f"{'CPU-s':>7} {'examples/CPU-s':>15}"
    )
    for bs, r in rows.items():
        print(
            f"{bs:>5} {r['seconds']:>8.1f} {r['ex_s']:>11.2f} {r['new']:>11} {r['tok_s']:>13.0f} "
            f"{r['cpu']:>7.1f} {r['ex_cpu_s']:>15.2f}"
        )
    one, *others = args.batch_sizes
    for bs in others:
        wall, cpu = rows[bs]["ex_s"] / rows[one]["ex_s"], rows[bs]["ex_cpu_s"] / rows[one]["ex_cpu_s"]
        print(f"batch {bs} / batch {one}: {wall:.1f}x examples/s wall, {cpu:.1f}x per CPU-second")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
