"""A grouped train/val split, then per-task balancing of train.

Split first, balance second: up-sampled copies therefore stay in train, and val measures each task on sources the
model never saw. The split is grouped by `source` (a block: one table, one procedure, one catalog row), so the
several phrasings of one fact never land on both sides.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

from finetune.params import Balance, Split


def split(examples: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Per task, hold out whole sources until val holds about `val_fraction` of that task's examples."""
    by_source: dict[str, list[dict]] = defaultdict(list)
    for e in examples:
        by_source[e["source"]].append(e)
    # A source belongs to the task of its first example (in practice one block feeds one task).
    sources_by_task: dict[str, list[str]] = defaultdict(list)
    for source, group in by_source.items():
        sources_by_task[group[0]["task"]].append(source)
    rng = random.Random(seed)
    val_sources: set[str] = set()
    for task in sorted(sources_by_task):
        sources = sorted(sources_by_task[task])
        rng.shuffle(sources)
        total = sum(len(by_source[s]) for s in sources)
        target, held = val_fraction * total, 0
        for s in sources[: max(len(sources) - 1, 0)]:  # always leave train at least one source
            if held + len(by_source[s]) / 2 > target:
                continue
            val_sources.add(s)
            held += len(by_source[s])
    train = [e for e in examples if e["source"] not in val_sources]
    val = [e for e in examples if e["source"] in val_sources]
    return train, val


def targets(counts: dict[str, int], max_ratio: float, max_upsample: int) -> dict[str, int]:
    """Per-task sizes with max/min ≤ max_ratio: raise minorities (at most max_upsample×), then cap the majority."""
    top = max(counts.values())
    raised = {t: max(c, min(c * max_upsample, math.ceil(top / max_ratio))) for t, c in counts.items()}
    cap = math.floor(min(raised.values()) * max_ratio)
    return {t: min(n, cap) for t, n in raised.items()}


def resample(group: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n examples from group: a random subset when shrinking; whole copies plus a random remainder when growing.
    Copies get ids `<id>~2`, `<id>~3`, … so ids stay unique and validate can tell copies from originals."""
    if n <= len(group):
        return rng.sample(group, n)
    out = list(group)
    copy = 2
    while len(out) < n:
        extra = group if n - len(out) >= len(group) else rng.sample(group, n - len(out))
        out += [{**e, "id": f"{e['id']}~{copy}"} for e in extra]
        copy += 1
    return out


def balance(train: list[dict], max_ratio: float, max_upsample: int, seed: int) -> list[dict]:
    by_task: dict[str, list[dict]] = defaultdict(list)
    for e in train:
        by_task[e["task"]].append(e)
    sizes = targets({t: len(g) for t, g in by_task.items()}, max_ratio, max_upsample)
    rng = random.Random(seed)
    out = []
    for task in sorted(by_task):
        out += resample(by_task[task], sizes[task], rng)
    rng.shuffle(out)
    return out


def run(examples: list[dict], bparams: Balance, sparams: Split) -> tuple[list[dict], list[dict], dict]:
    train, val = split(examples, sparams.val_fraction, sparams.seed)
    balanced = balance(train, bparams.max_ratio, bparams.max_upsample, bparams.seed)
    before, after = Counter(e["task"] for e in train), Counter(e["task"] for e in balanced)
    report = {
        "train_before": dict(sorted(before.items())),
        "train_after": dict(sorted(after.items())),
        "val": dict(sorted(Counter(e["task"] for e in val).items())),
        "ratio_before": max(before.values()) / min(before.values()),
        "ratio_after": max(after.values()) / min(after.values()),
        "n_train": len(balanced),
        "n_val": len(val),
        "val_share": len(val) / (len(val) + len(train)),
    }
    return balanced, val, report
