"""Training-throughput benchmark, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_train.py                     # models/base + data/processed from `dvc repro`
    python tests/benchmarks/bench_train.py --examples 512 --threads 2

Trains the default model (`models/base`, the tiny Llama unless params say otherwise) for one epoch over the first
`--examples` train examples with the repo's params in four set-ups, QLoRA (4-bit base) on/off x `train.packing`
(TRL packing with padding-free batches) on/off, all in this one process so they share the machine's state, and
prints non-padding tokens per second for each plus the ratios. It calls the train stage's own `run()` (the code
`dvc repro` runs), without DVCLive. Figures, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.io import load_jsonl, write_jsonl
from finetune.params import Params, load_params


def measure(params: Params, base: Path, train: Path, val: Path, work: Path, load_in_4bit: bool, packing: bool) -> dict:
    from finetune.training import trainer as stage

    # model_copy, not validation: "no" is no eval_strategy a user may set, only what this timing needs.
    quant = params.quant.model_copy(update={"load_in_4bit": load_in_4bit})
    train_params = params.train.model_copy(
        update={
            "packing": packing,
            "epochs": 1,
            "eval_strategy": "no",  # timing training alone: no evaluation, no checkpoint inside the timed loop
            "load_best_model_at_end": False,
            "early_stopping_patience": 0,
            "logging_steps": 1000,
        }
    )
    p = params.model_copy(update={"quant": quant, "train": train_params})
    ckpt = work / f"ckpt-{int(load_in_4bit)}{int(packing)}"
    clock = CPUClock()
    real_callbacks = stage.callbacks
    stage.callbacks = lambda train, live: real_callbacks(train, live) + [clock.callback]
    try:
        _, _, metrics = stage.run(train, val, base, p, ckpt, live=None)
    finally:
        stage.callbacks = real_callbacks
    return {
        "steps": metrics["global_step"],
        "tokens": metrics["tokens_processed"],
        "seconds": metrics["train_runtime"],
        "tok_s": metrics["tokens_per_second"],
        "tok_cpu_s": metrics["tokens_processed"] / clock.seconds,
    }


class CPUClock:
    """CPU seconds this process spent in trainer.train(). On a machine others share, wall time counts their bursts
    too; CPU time mostly does not (run with --threads 1 so no thread spins waiting for a descheduled sibling)."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_train_begin(self, *args, **kwargs):
                clock.started = time.process_time()

            def on_train_end(self, *args, **kwargs):
                clock.seconds = time.process_time() - clock.started

        self.callback = Callback()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models/base"))
    ap.add_argument("--train", default=str(REPO / "data/processed/heating/train.jsonl"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--examples", type=int, default=256, help="train examples per set-up (one epoch)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per set-up; the fastest is shown")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.model).is_dir() or not Path(args.train).is_file():
        sys.exit(f"{args.model} or {args.train} is missing: run `dvc repro train` first (or pass --model/--train)")
    params = load_params(args.params)
    examples = load_jsonl(args.train)[: args.examples]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_jsonl(work / "train.jsonl", examples)
        write_jsonl(work / "val.jsonl", examples[:8])  # run() evaluates once at the end; keep it short
        rows = {}
        # Set-ups interleaved and the fastest of --repeats kept: on a shared machine a neighbour's burst then hits
        # one repeat, not one set-up.
        for _ in range(args.repeats):
            for load_in_4bit in (True, False):
                for packing in (False, True):
                    r = measure(
                        params, Path(args.model), work / "train.jsonl", work / "val.jsonl", work, load_in_4bit, packing
                    )
                    if (load_in_4bit, packing) not in rows or r["tok_s"] > rows[(load_in_4bit, packing)]["tok_s"]:
                        rows[(load_in_4bit, packing)] = r
    print(
        f"\ntrain throughput (fastest of {args.repeats}): {args.model}, {len(examples)} examples x 1 epoch, batch "
        f"{params.train.per_device_train_batch_size}, {device}, torch {torch.__version__}"
    )
    print(
        f"{'base':<12} {'packing':<8} {'steps':>6} {'tokens':>9} {'seconds':>8} {'tokens/s':>9} {'tokens/CPU-s':>13}"
    )
    for (q, pk), r in rows.items():
        base = "4-bit QLoRA" if q else "fp32 LoRA"
        print(
            f"{base:<12} {'on' if pk else 'off':<8} {r['steps']:>6} {r['tokens']:>9} {r['seconds']:>8.1f} "
            f"{r['tok_s']:>9.0f} {r['tok_cpu_s']:>13.0f}"
        )
    for pk in (False, True):
        wall = rows[(True, pk)]["tok_s"] / rows[(False, pk)]["tok_s"]
        cpu = rows[(True, pk)]["tok_cpu_s"] / rows[(False, pk)]["tok_cpu_s"]
        print(f"QLoRA / LoRA, packing {'on' if pk else 'off'}: {wall:.2f}x wall, {cpu:.2f}x CPU")
    for q in (True, False):
        wall = rows[(q, True)]["tok_s"] / rows[(q, False)]["tok_s"]
        cpu = rows[(q, True)]["tok_cpu_s"] / rows[(q, False)]["tok_cpu_s"]
        print(f"packing on / off, {'QLoRA' if q else 'LoRA'}: {wall:.2f}x wall, {cpu:.2f}x CPU")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
