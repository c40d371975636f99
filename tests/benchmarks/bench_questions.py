"""The users' questions in evaluate: what they cost, and what the judge asks. A script, not a test:

    python tests/benchmarks/bench_questions.py --domain skein_howto          # after `dvc repro evaluate@skein_howto`
    python tests/benchmarks/bench_questions.py --domain heating --repeats 3

1. evaluate's wall time for the domain without --questions (what it did before) and with them, `--repeats` times
   each, alternating so machine load hits both alike; as a subprocess (`finetune evaluate`), imports included.
2. The judge on that domain's questions and both answers (data/questions/<domain>.jsonl), against a replay server
   on loopback (tests.serving.FaultServer, a fixed verdict): requests sent on a first run, a rerun, and after
   editing one question's reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def evaluate_args(domain: str, out: Path, questions: bool) -> list[str]:
    args = ["finetune", "evaluate", "--model", "models/base", "--adapter", f"models/{domain}"]
    args += ["--val", f"data/processed/{domain}/val.jsonl"]
    args += ["--baseline-predictions", f"data/eval/{domain}/baseline_predictions.jsonl"]
    args += ["--baseline-scores", f"data/eval/{domain}/baseline_scores.json"]
    args += ["--predictions", str(out / "p.jsonl"), "--metrics", str(out / "m.json"), "--report", str(out / "r.md")]
    args += ["--plot", str(out / "e.csv"), "--tasks", f"domains/{domain}/tasks.yaml"]
    args += ["--params", "params.yaml", "--params", f"domains/{domain}/params.yaml"]
    if questions:
        args += ["--questions", f"domains/{domain}/questions.yaml", "--question-answers", str(out / "q.jsonl")]
    return args


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - t0


def judge_requests(domain: str, cache: Path) -> list[tuple[str, int]]:
    from finetune.evaluation.judge import grade
    from finetune.io import load_jsonl
    from finetune.params import Judge
    from tests.serving import FaultServer

    answers = load_jsonl(REPO / f"data/questions/{domain}.jsonl")

    def rows(edit: bool = False) -> list[dict]:
        out = []
        for side in ("base", "finetuned"):
            for i, a in enumerate(answers):
                reference = a["reference"] + (" (edited)" if edit and i == 0 else "")
                out.append({"prompt": a["question"], "reference": reference, "prediction": a[side]["prediction"]})
        return out

    figures = []
    with FaultServer(lambda p: '{"verdict": "partly", "reason": "replayed"}') as server:
        judge = Judge(endpoint=server.url, model="replay", cache=str(cache))
        for what, batch in (("first run", rows()), ("rerun", rows()), ("one question edited", rows(edit=True))):
            before = sum(server.counts.values())
            counts = grade(batch, judge, "bench", "answers")
            figures.append((what, sum(server.counts.values()) - before, counts["asked"], len(batch)))
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", default="skein_howto")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    d = args.domain
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for questions in (False, True):
                times[questions].append(timed(evaluate_args(d, out, questions)))
        for questions, label in ((False, "without questions (before)"), (True, "with questions")):
            runs = ", ".join(f"{t:.1f}" for t in times[questions])
            print(f"evaluate@{d} {label}: median {statistics.median(times[questions]):.1f} s ({runs})")
        for what, sent, asked, n in judge_requests(d, out / "judge_cache"):
            print(f"judge, {what}: {sent} requests reached the server ({asked} counted as asked) for {n} answers")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
