"""A grouped train/val split, then per-task balancing of train, then val cut per task in step with train.

Split first, balance second: up-sampled copies therefore stay in train, and val measures each task on sources the
model never saw. The split is grouped by `source` (a block: one table, one procedure, one catalog row), so the
several phrasings of one fact never land on both sides. Balancing may cut a dominant task in train from thousands of
examples to a hundred; its val is then cut too (cap_val), so val stays val_fraction of what each task trains on.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

from finetune.params import Balance, Split


def split(examples: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out whole sources: val gets val_fraction of all sources (rounded), spread over the tasks in proportion.

    Sources are grouped by the tasks they feed (in practice one task per block); each group gives val its share of sources,
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


def cap_val(val: list[dict], train_counts: dict[str, int], val_fraction: float, seed: int) -> list[dict]:
    """Val bounded per task the way balance bounds train: at most round(n × f / (1 − f)) examples of a task, n its
    examples in balanced train and f val_fraction, so val is f of that task's train + val.

    Whole sources are kept, in an order shuffled with `seed` (split.seed), while they fit; the rest of the cap is
    filled with examples sampled from the next sources. Val keeps the split's order.
    """
    ratio = val_fraction / (1 - val_fraction)
    by_task: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, e in enumerate(val):
        by_task[e["task"]][e["source"]].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for task in sorted(by_task):
        cap = math.floor(train_counts.get(task, 0) * ratio + 0.5)  # round half up, as split() rounds
        sources = sorted(by_task[task])
        rng.shuffle(sources)
        whole = []
        room = cap
        for source in sources:
            if len(by_task[task][source]) <= room:
                whole.append(source)
                room -= len(by_task[task][source])
        keep.update(i for source in whole for i in by_task[task][source])
        for source in sources:  # the rest of the cap from the first sources that did not fit whole
            if room <= 0:
                break
            if source not in whole:
                taken = rng.sample(by_task[task][source], min(room, len(by_task[task][source])))
                keep.update(taken)
                room -= len(taken)
    return [e for i, e in enumerate(val) if i in keep]


def source_share(val: list[dict], examples: list[dict]) -> float:
    """Val's share of the sources of `examples`: what split.val_fraction sets, before cap_val."""
    total = {e["source"] for e in examples}
    return len({e["source"] for e in val}) / len(total) if total else 0.0


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
    held, held_share = Counter(e["task"] for e in val), source_share(val, examples)
    val = cap_val(val, after, sparams.val_fraction, sparams.seed)
    ratio = sparams.val_fraction / (1 - sparams.val_fraction)
    # Balance keeps every original of a task it up-samples and a subset of one it cuts: train's distinct examples.
    distinct = sum(min(before[t], after[t]) for t in after)
    report = {
        "left_out_tasks": left_out,  # task -> its train examples, under balance.min_examples
        "train_before": dict(sorted(before.items())),
        "train_after": dict(sorted(after.items())),
        "val_before": dict(sorted(held.items())),  # as the split held it out
        "val_cap": {t: math.floor(after[t] * ratio + 0.5) for t in sorted(held)},  # train_after x f / (1 - f)
        "val": dict(sorted(Counter(e["task"] for e in val).items())),  # after the cap
        "n_val_cut": sum(held.values()) - len(val),
        "ratio_before": max(before.values()) / min(before.values()),
        "ratio_after": max(after.values()) / min(after.values()),
        "n_train": len(balanced),
        "n_val": len(val),
        # Validate's val_share gate: val / (val + train's distinct examples), split.val_fraction give or take the
        # rounding of whole sources.
        "val_share": len(val) / (len(val) + distinct),
        "split_source_share": held_share,  # of the sources, as the split held them out (before the cap)
    }
    return balanced, val, report
