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
    """Hold out whole sources: val gets val_fraction of all sources (rounded), spread over the tasks in proportion.

    This is the one meaning of `split.val_fraction`, and validate's val_share gate measures the same share. Sources
    are grouped by the tasks they feed (in practice one task per block); each group gives val its share of sources,
    rounded by largest remainder, and keeps at least one source in train (a task with a single source keeps it, and
    its share goes to the others).
    """
    by_source: dict[str, list[dict]] = defaultdict(list)
    for e in examples:
        by_source[e["source"]].append(e)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for source, group in by_source.items():
        groups[tuple(sorted({e["task"] for e in group}))].append(source)
    quota = {g: val_fraction * len(sources) for g, sources in groups.items()}
    room = {g: max(len(sources) - 1, 0) for g, sources in groups.items()}  # always leave train a source
    held = {g: min(math.floor(q), room[g]) for g, q in quota.items()}
    # math.floor(x + 0.5), not round(): Python rounds halves to even, which would be a surprise here.
    left = math.floor(val_fraction * len(by_source) + 0.5) - sum(held.values())
    while left > 0 and (open_ := [g for g in groups if held[g] < room[g]]):
        # The group furthest below its share gets the next source; ties go by name, so the split is stable.
        g = min(open_, key=lambda g: (held[g] - quota[g], g))
        held[g] += 1
        left -= 1
    rng = random.Random(seed)
    val_sources: set[str] = set()
    for g in sorted(groups):
        sources = sorted(groups[g])
        rng.shuffle(sources)
        val_sources.update(sources[: held[g]])
    train = [e for e in examples if e["source"] not in val_sources]
    val = [e for e in examples if e["source"] in val_sources]
    return train, val


def source_share(val: list[dict], examples: list[dict]) -> float:
    """Val's share of the sources of `examples`: what split.val_fraction sets and validate gates on."""
    total = {e["source"] for e in examples}
    return len({e["source"] for e in val}) / len(total) if total else 0.0


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
    # A task with a handful of examples teaches nothing, and as the smallest task it would set the cap for all the
    # others (one STEPS list in a datasheet set cut 155 TABLE examples to 20): it is left out of both splits.
    before = Counter(e["task"] for e in train)
    left_out = {t: n for t, n in sorted(before.items()) if n < bparams.min_examples}
    train = [e for e in train if e["task"] not in left_out]
    val = [e for e in val if e["task"] not in left_out]
    balanced = balance(train, bparams.max_ratio, bparams.max_upsample, bparams.seed) if train else []
    if not balanced:
        raise ValueError(
            f"no task has {bparams.min_examples} training examples (balance.min_examples): {dict(before)}"
        )
    before, after = Counter(e["task"] for e in train), Counter(e["task"] for e in balanced)
    report = {
        "left_out_tasks": left_out,  # task -> its train examples, under balance.min_examples
        "train_before": dict(sorted(before.items())),
        "train_after": dict(sorted(after.items())),
        "val": dict(sorted(Counter(e["task"] for e in val).items())),
        "ratio_before": max(before.values()) / min(before.values()),
        "ratio_after": max(after.values()) / min(after.values()),
        "n_train": len(balanced),
        "n_val": len(val),
        "val_share": source_share(val, examples),  # of the sources, as split.val_fraction is defined
        "val_example_share": len(val) / len(examples),  # of the examples before balancing, for reference
    }
    return balanced, val, report
