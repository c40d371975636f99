"""Validate stage: the gate between balance and train. Great Expectations checks train/val; any failure stops DVC.

    finetune validate                      # data/processed/{train,val}.jsonl, tokenizer from models/base
    finetune validate --train t.jsonl --val v.jsonl --model models/base --metrics m.json --docs docs/

Each split becomes a pandas frame with derived columns (problems, prompt, answer, n_tokens, overlap flags), and each
rule is one named GE expectation. The flat metrics JSON is the gate DVC diffs; the Data Docs HTML is for people.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from stages.io import InputError, atomic_path, load_params, log, read_jsonl, write_json
from stages.schema import EXAMPLE_COLUMNS, example_problems

UPSAMPLE_MARK = "~"  # balance writes up-sampled copies as `<original id>~2`, `~3`, …
SHOW_ROWS = 5  # offending rows printed per failed expectation
TOKENIZE_CHUNK = 2048  # texts per tokenizer call: enough to keep its Rust threads busy, few enough for a progress bar


# --- derived columns: small pure functions over one record -----------------------------------------------------


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


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise InputError(path, "model directory not found (run `dvc repro base` or pass --model)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(path, "the tokenizer has no chat template, so examples cannot be rendered")
    return tokenizer


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
    frame["answer"] = [answer_of(m) for m in messages]
    frame["n_tokens"] = pd.array(n_tokens, dtype="Int64")
    return frame


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
    """Val's share of the sources (the gate) and of the unique examples (shown for reference)."""
    import pandas as pd

    unique_train = int((train["copy"] == 0).sum())
    share = len(val) / (len(val) + unique_train) if len(val) + unique_train else 0.0
    sources = [{v for v in f.get("source", []) if isinstance(v, str)} for f in (train, val)]
    source_share = len(sources[1]) / len(sources[0] | sources[1]) if sources[0] | sources[1] else 0.0
    return pd.DataFrame(
        {
            "val_share": [round(share, 4)],
            "n_val": [len(val)],
            "n_train_unique": [unique_train],
            "source_share": [round(source_share, 4)],
        }
    )


# --- the checks: one named expectation each, with how to explain an offending row ------------------------------


@dataclass(frozen=True)
class Check:
    name: str  # its key in metrics/validation.json, and the start of its line in Data Docs
    frame: str  # the frame it runs on: train, val, tasks or share
    expectation: Any  # a great_expectations Expectation
    why: Callable[[Any], str]  # offending row -> words for the failure summary
    observed: Callable[[Any], dict] | None = None  # frame -> a few small numbers for the metrics entry


def checks(tasks: list[str], max_seq_len: int, max_ratio: float, val_fraction: float, tolerance: float) -> list[Check]:
    """Every rule, in the order of metrics/validation.json."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"  # read at import and context creation: no network calls from a gate
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    found: list[Check] = []

    def add(name, frame, rule, expectation, why, observed=None):
        # GE returns results in its own order and Data Docs ignore `meta`: the name goes in both meta and description.
        expectation.meta, expectation.description = {"name": name}, f"{name}: {rule}"
        found.append(Check(name, frame, expectation, why, observed))

    for s in ("train", "val"):
        add(
            f"{s}_required_columns",
            s,
            f"fields {', '.join(EXAMPLE_COLUMNS)} are present",
            gxe.ExpectTableColumnsToMatchSet(column_set=list(EXAMPLE_COLUMNS), exact_match=False),
            lambda r: "",
        )
        add(
            f"{s}_well_formed",
            s,
            "every example has its fields and a valid conversation (column problems is empty)",
            gxe.ExpectColumnValueLengthsToEqual(column="problems", value=0),
            lambda r: r["problems"],
        )
        add(
            f"{s}_task_known",
            s,
            f"task is one of generate.tasks: {', '.join(tasks)}",
            gxe.ExpectColumnValuesToBeInSet(column="task", value_set=list(tasks)),
            lambda r: f"task {r['task']!r} is not in generate.tasks",
        )
        add(
            f"{s}_fits_max_seq_len",
            s,
            f"the example rendered with the chat template has at most {max_seq_len} tokens (model.max_seq_len)",
            gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=1, max_value=max_seq_len),
            lambda r: f"{r['n_tokens']} tokens, model.max_seq_len is {max_seq_len}",
            lambda f: {"observed": int(f["n_tokens"].max()) if f["n_tokens"].notna().any() else 0},
        )
        add(
            f"{s}_unique_ids",
            s,
            "ids are unique",
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            lambda r: "another example has the same id",
        )
        add(
            f"{s}_unique_prompt_answer",
            s,
            "no two original examples (id without ~) have the same prompt and answer",
            # Up-sampled copies repeat their original on purpose; only originals must be distinct.
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=["prompt", "answer"], row_condition=Column(name="copy") == 0
            ),
            lambda r: "another example has the same prompt and answer",
        )
    add(
        "val_source_not_in_train",
        "val",
        "no val example comes from a source that train also uses",
        gxe.ExpectColumnValuesToBeInSet(column="source_in_other_split", value_set=[False]),
        lambda r: "its source is also in train",
    )
    add(
        "val_prompt_not_in_train",
        "val",
        "no val prompt occurs in train",
        gxe.ExpectColumnValuesToBeInSet(column="prompt_in_other_split", value_set=[False]),
        lambda r: "its prompt also occurs in train",
    )
    add(
        "train_task_ratio",
        "tasks",
        f"no task has more than {max_ratio}x the examples of the smallest (balance.max_ratio)",
        gxe.ExpectColumnValuesToBeBetween(column="ratio", max_value=max_ratio),
        lambda r: f"task {r['task']!r} has {int(r['n'])} examples, {r['ratio']}x the smallest task",
        lambda f: {"observed": float(f["ratio"].max()) if len(f) else 0.0},
    )
    lo, hi = round(val_fraction - tolerance, 4), round(val_fraction + tolerance, 4)
    # Measured on sources, as split.val_fraction is defined: balance down-samples train after the split, so a share
    # of examples would drift with every balance param.
    add(
        "val_share",
        "share",
        f"val holds {val_fraction} ± {tolerance} of the sources (split.val_fraction)",
        gxe.ExpectColumnValuesToBeBetween(column="source_share", min_value=lo, max_value=hi),
        lambda r: f"val holds {r['source_share']:.1%} of the sources, expected {val_fraction:.0%} ± {tolerance:.0%}",
        lambda f: {"observed": float(f["source_share"].iloc[0]), "example_share": float(f["val_share"].iloc[0])},
    )
    return found


def run_checks(frames: dict, all_checks: list[Check], docs: str | os.PathLike) -> dict[str, Any]:
    """Run every check with GE (all of them, even after a failure) and build Data Docs into `docs`, replaced whole."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)  # the ephemeral default site would write into a fresh /tmp dir each run
    source = context.data_sources.add_pandas("validate")
    results = {}
    for key, frame in frames.items():
        batch = source.add_dataframe_asset(key).add_batch_definition_whole_dataframe(key)
        suite = context.suites.add(gx.ExpectationSuite(name=key))
        for c in all_checks:
            if c.frame == key:
                suite.add_expectation(c.expectation)
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=key, data=batch, suite=suite))
        outcome = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
        for r in outcome.results:
            results[r.expectation_config.meta["name"]] = r
    with atomic_path(docs, is_dir=True) as tmp:
        site = {"class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
        site["store_backend"] = {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp.resolve())}
        context.add_data_docs_site("validation", site)
        context.build_data_docs(site_names=["validation"])
    return results


def summarize(frames: dict, all_checks: list[Check], results: dict) -> tuple[dict, list[str]]:
    """The metrics entry of each check, in check order, and the lines that explain the failed ones."""
    entries, lines = {}, []
    for c in all_checks:
        r, frame = results[c.name], frames[c.frame]
        res = dict(r.result or {})
        entry: dict[str, Any] = {"success": bool(r.success)}
        info = r.exception_info or {}
        error = info.get("exception_message") if info.get("raised_exception") else None
        missing = res.get("details", {}).get("mismatched", {}).get("missing") or []
        entry["unexpected_count"] = int(res.get("unexpected_count", len(missing)))
        if c.observed is not None and len(frame):
            entry.update(c.observed(frame))
        if missing:
            entry["missing"] = sorted(missing)
        if error:
            entry["error"] = error.splitlines()[0][:200]
        entries[c.name] = entry
        if r.success:
            continue
        lines.append(
            f"FAILED {c.name}: {entry['unexpected_count']} unexpected" + (f" ({entry['error']})" if error else "")
        )
        if missing:
            lines.append(f"  missing columns: {', '.join(sorted(missing))}")
        for label in list(dict.fromkeys(res.get("partial_unexpected_index_list") or []))[:SHOW_ROWS]:
            row = frame.loc[label]
            if c.frame in ("train", "val"):
                where = f"{frame.attrs['path']}:{row['line']}"
                lines.append(f"  {where}: id={row.get('id')} source={row.get('source')}: {c.why(row)}")
            else:
                lines.append(f"  {c.why(row)}")
    return entries, lines


def run(train_path, val_path, model, metrics_path, docs, tasks, max_seq_len, max_ratio, val_fraction, tolerance):
    """Validate train and val; write metrics and Data Docs; return the metrics and the failure lines."""
    tokenizer = load_tokenizer(model)
    t0 = time.perf_counter()
    frames = {}
    for split, path in (("train", train_path), ("val", val_path)):
        rows = list(read_jsonl(path))
        frames[split] = example_frame([r for _, r in rows], tokenizer, path, [n for n, _ in rows])
    train, val = frames["train"], frames["val"]
    log(
        "validate",
        f"train {len(train)} examples, val {len(val)}; read and tokenised in {time.perf_counter() - t0:.1f} s",
    )
    mark_overlap(train, val)
    mark_overlap(val, train)
    frames.update(tasks=task_counts(train, tasks), share=split_share(train, val))
    t0 = time.perf_counter()
    all_checks = checks(tasks, max_seq_len, max_ratio, val_fraction, tolerance)
    results = run_checks(frames, all_checks, docs)
    log("validate", f"ran {len(all_checks)} expectations and built Data Docs in {time.perf_counter() - t0:.1f} s")
    entries, lines = summarize(frames, all_checks, results)
    metrics = {
        "success": all(e["success"] for e in entries.values()),
        "n_train": len(train),
        "n_val": len(val),
        "expectations": entries,
    }
    write_json(metrics_path, metrics)
    return metrics, lines


def read_params(path) -> dict[str, Any]:
    params = load_params(path)

    def get(dotted: str, default: Any = ...):
        node: Any = params
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                if default is ...:
                    raise InputError(path, f"missing `{dotted}`")
                return default
            node = node[key]
        return node

    tasks = get("generate.tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InputError(path, "`generate.tasks` must be a non-empty list of task names")
    return {
        "tasks": [str(t) for t in tasks],
        "max_seq_len": int(get("model.max_seq_len")),
        "max_ratio": float(get("balance.max_ratio")),
        "val_fraction": float(get("split.val_fraction")),
        "tolerance": float(get("validate.val_fraction_tolerance", 0.05)),
    }


@click.command("validate")
@click.option("--train", "train_path", default="data/processed/train.jsonl", show_default=True, type=click.Path())
@click.option("--val", "val_path", default="data/processed/val.jsonl", show_default=True, type=click.Path())
@click.option("--model", default="models/base", show_default=True, type=click.Path(), help="Tokenizer directory.")
@click.option("--metrics", "metrics_path", default="metrics/validation.json", show_default=True, type=click.Path())
@click.option("--docs", default="reports/validation", show_default=True, type=click.Path(), help="Data Docs site.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
def cli(train_path, val_path, model, metrics_path, docs, params_path):
    """Check train/val with Great Expectations; exit non-zero (stopping `dvc repro`) if any expectation fails."""
    metrics, lines = run(train_path, val_path, model, metrics_path, docs, **read_params(params_path))
    passed = sum(e["success"] for e in metrics["expectations"].values())
    log("validate", f"{passed}/{len(metrics['expectations'])} expectations passed; wrote {metrics_path} and {docs}/")
    if not metrics["success"]:
        click.echo("\n".join(lines), err=True)
        raise click.ClickException(f"validation failed; see {docs}/index.html")
