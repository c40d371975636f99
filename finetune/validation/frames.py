"""Train/val as pandas frames with the derived columns the expectations check: problems, prompt, answer, token
length under the chat template, up-sampled copy number, degenerate answers, overlap with the other split."""

from __future__ import annotations

from typing import Any

from finetune.schema import EXAMPLE_COLUMNS, example_problems, repetition_problem

UPSAMPLE_MARK = "~"  # balance writes up-sampled copies as `<original id>~2`, `~3`, …
TOKENIZE_CHUNK = 2048  # texts per tokenizer call: enough to keep its Rust threads busy, few enough for a progress bar


def copy_number(example_id: Any) -> int:
    """0 for an original example, k for its up-sampled copy `<id>~k`."""
    if not isinstance(example_id, str) or UPSAMPLE_MARK not in example_id:
        return 0
    k = example_id.rsplit(UPSAMPLE_MARK, 1)[1]
    return int(k) if k.isdigit() and int(k) > 0 else 1


def render_prompt(messages: Any) -> str:
    """Every message before the last as `role: content` lines: what the model sees before it answers."""
    if not isinstance(messages, list):
        return ""
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages[:-1] if isinstance(m, dict))


def answer_of(messages: Any) -> str:
    last = messages[-1] if isinstance(messages, list) and messages else None
    if isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str):
        return last["content"]
    return ""


def count_tokens(tokenizer, conversations: list) -> tuple[list[int | None], dict[int, str]]:
    """Tokens in each whole conversation as the chat template renders it; (None, why) where it cannot render.

    Rendering is per example (the template is Jinja), tokenising is batched: the fast tokenizer handles a list of
    texts in parallel, which is what keeps 100k examples well under a minute.
    """
    from tqdm import tqdm

    texts, errors = [], {}
    for i, messages in enumerate(conversations):
        try:
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
        except Exception as e:  # noqa: BLE001 - a template may refuse a conversation (e.g. one with a system role)
            texts.append(None)
            errors[i] = f"the chat template cannot render it: {e}"
    ok = [i for i, t in enumerate(texts) if t is not None]
    lengths: list[int | None] = [None] * len(texts)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    chunks = range(0, len(ok), TOKENIZE_CHUNK)
    for start in tqdm(chunks, desc="tokenizing", unit="chunk", disable=None, leave=False):
        idx = ok[start : start + TOKENIZE_CHUNK]
        batch = [texts[i] for i in idx]
        # The template already wrote the special tokens as text, so adding them again would count BOS twice.
        if backend is not None:  # the Rust tokenizer itself: a quarter faster than the wrapper, same ids
            counts = [len(e.ids) for e in backend.encode_batch(batch, add_special_tokens=False)]
        else:
            counts = [len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]]
        for i, n in zip(idx, counts, strict=True):
            lengths[i] = n
    return lengths, errors


def example_frame(records: list[dict], tokenizer, path: str = "", lines: list[int] | None = None):
    """One row per example: the required fields as they are in the file, plus the columns the checks need."""
    import pandas as pd

    problems = [example_problems(r) for r in records]
    messages = [r.get("messages") for r in records]
    # Only well-formed conversations go through the template: a broken one is already reported in `problems`.
    good = [i for i, p in enumerate(problems) if not p]
    lengths, errors = count_tokens(tokenizer, [messages[i] for i in good])
    n_tokens: list[int | None] = [None] * len(records)
    for k, i in enumerate(good):
        n_tokens[i] = lengths[k]
        if k in errors:
            problems[i].append(errors[k])
    frame = pd.DataFrame({c: [r.get(c) for r in records] for c in EXAMPLE_COLUMNS if any(c in r for r in records)})
    frame["line"] = lines if lines is not None else range(1, len(records) + 1)
    frame.attrs["path"] = str(path)  # for `PATH:LINE:` in the failure summary
    frame["problems"] = ["; ".join(p) for p in problems]
    frame["copy"] = [copy_number(r.get("id")) for r in records]
    frame["prompt"] = [render_prompt(m) for m in messages]
    answers = [answer_of(m) for m in messages]
    frame["answer"] = answers
    frame["n_tokens"] = pd.array(n_tokens, dtype="Int64")
    frame["answer_chars"] = pd.array([len(a) for a in answers], dtype="int64")
    frame["repeated"] = pd.array([repetition_problem(a) for a in answers], dtype=object)
    return frame


def split_overlong(frame, max_seq_len: int):
    """(kept, overlong): the rows within max_seq_len tokens (and those the template could not count, which the
    well_formed check reports), and the rows over it. Both keep the frame's path for `PATH:LINE` messages."""
    over = frame["n_tokens"].fillna(0).astype(int) > max_seq_len
    kept, overlong = frame[~over].reset_index(drop=True), frame[over].reset_index(drop=True)
    kept.attrs["path"] = overlong.attrs["path"] = frame.attrs["path"]
    return kept, overlong


def mark_overlap(frame, other) -> None:
    """Flag rows whose source or prompt text also occurs in the other split: the model would be graded on training."""
    for col in ("source", "prompt"):
        theirs = {v for v in other[col] if isinstance(v, str)} if col in other else set()
        mine = frame[col] if col in frame else [None] * len(frame)
        frame[f"{col}_in_other_split"] = [isinstance(v, str) and v in theirs for v in mine]


def task_counts(train, tasks: list[str]) -> Any:
    """Examples per configured task in train and each one's multiple of the smallest task. Up-sampled copies count:
    they are what training sees. Unknown tasks are left out here; `task_known` reports them."""
    import pandas as pd

    column = train["task"] if "task" in train else pd.Series([], dtype=object)
    counts = column[column.map(lambda t: isinstance(t, str) and t in tasks)].value_counts().sort_index()
    smallest = counts.min() if len(counts) else 1
    return pd.DataFrame({"task": counts.index, "n": counts.values, "ratio": (counts.values / smallest).round(4)})


def split_share(train, val) -> Any:
    """Val's share of train's distinct examples + val (the gate: up-sampled copies are not counted, so it is the share
    balance promises, split.val_fraction, whatever balance up-sampled or cut), and of the sources (for reference)."""
    import pandas as pd

    unique_train = int((train["copy"] == 0).sum())
    share = len(val) / (len(val) + unique_train) if len(val) + unique_train else 0.0
    sources = [{v for v in f.get("source", []) if isinstance(v, str)} for f in (train, val)]
    total = sources[0] | sources[1]
    return pd.DataFrame(
        {
            "val_share": [round(share, 4)],
            "n_val": [len(val)],
            "n_train_unique": [unique_train],
            "source_share": [round(len(sources[1]) / len(total), 4) if total else 0.0],
        }
    )


def row_entries(frame) -> list[dict]:
    """{line, id, source, n_tokens} of each row: where to find an example the metrics list."""
    return [
        {"line": int(r["line"]), "id": r.get("id"), "source": r.get("source"), "n_tokens": int(r["n_tokens"])}
        for _, r in frame.iterrows()
    ]
