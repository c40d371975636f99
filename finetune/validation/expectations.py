"""The gate between balance and train: every rule one named Great Expectations expectation over the frames of
finetune.validation.frames. The flat metrics JSON is the gate DVC diffs; the Data Docs HTML is for people."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from finetune.io import atomic_path, log, read_jsonl, write_json, write_jsonl
from finetune.schema import EXAMPLE_COLUMNS
from finetune.training.models import load_tokenizer
from finetune.validation.frames import (
    example_frame,
    mark_overlap,
    row_entries,
    split_overlong,
    split_share,
    task_counts,
)

SHOW_ROWS = 5  # offending rows printed per failed expectation


@dataclass(frozen=True)
class Check:
    name: str  # its key in metrics/validation.json, and the start of its line in Data Docs
    frame: str  # the frame it runs on: train, val, tasks or share
    expectation: Any  # a great_expectations Expectation
    why: Callable[[Any], str]  # offending row -> words for the failure summary
    observed: Callable[[Any], dict] | None = None  # frame -> a few small numbers for the metrics entry
    hint: str = ""  # what a user can do about a failure, printed after its rows
    warn: bool = False  # a failure is a warning (GE severity "warning"): logged and counted, the gate still passes


def checks(
    tasks: list[str],
    max_seq_len: int,
    max_ratio: float,
    val_fraction: float,
    tolerance: float,
    max_answer_chars: int = 4000,
) -> list[Check]:
    """Every rule, in the order of metrics/validation.json."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"  # read at import and context creation: no network calls from a gate
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    found: list[Check] = []

    def add(name, frame, rule, expectation, why, observed=None, hint=""):
        # GE returns results in its own order and Data Docs ignore `meta`: the name goes in both meta and description.
        expectation.meta, expectation.description = {"name": name}, f"{name}: {rule}"
        found.append(Check(name, frame, expectation, why, observed, hint))

    for s in ("train", "val"):
        add(
            f"{s}_required_columns",
            s,
            f"fields {', '.join(EXAMPLE_COLUMNS)} are present",
            gxe.ExpectTableColumnsToMatchSet(column_set=list(EXAMPLE_COLUMNS), exact_match=False),
            lambda r: "",
            hint="made by generate, which writes every field, and balance, which only copies them: were these files "
            "written by them? no param drops a field: rerun generate and balance",
        )
        add(
            f"{s}_well_formed",
            s,
            "every example has its fields and a valid conversation (column problems is empty)",
            gxe.ExpectColumnValueLengthsToEqual(column="problems", value=0),
            lambda r: r["problems"],
            hint="made by extract (imported conversations) or generate (the ones it builds): extract.on_error: skip "
            "leaves a malformed record out and lists it in metrics/rejects.json",
        )
        add(
            f"{s}_task_known",
            s,
            f"task is one of generate.tasks: {', '.join(tasks)}",
            gxe.ExpectColumnValuesToBeInSet(column="task", value_set=list(tasks)),
            lambda r: f"task {r['task']!r} is not in generate.tasks",
            hint="made by generate from an older generate.tasks: add the task to generate.tasks (and tasks.yaml), "
            "or rerun generate and balance",
        )
        add(
            f"{s}_fits_max_seq_len",
            s,
            f"the example rendered with the chat template has at most {max_seq_len} tokens (model.max_seq_len)",
            gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=1, max_value=max_seq_len),
            lambda r: f"{r['n_tokens']} tokens, model.max_seq_len is {max_seq_len}",
            lambda f: {"observed": int(f["n_tokens"].max()) if f["n_tokens"].notna().any() else 0},
            "made by extract and generate (a long section or conversation): set validate.on_overlong: drop to leave "
            "them out, lower extract.max_chars (long document sections) or raise model.max_seq_len",
        )
        add(
            f"{s}_unique_ids",
            s,
            "ids are unique",
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            lambda r: "another example has the same id",
            hint="made by generate (ids) and balance (copies <id>~k), which never repeat one: no param changes "
            "that; a file edited or concatenated by hand does. Rerun generate and balance",
        )
        add(
            f"{s}_unique_prompt_answer",
            s,
            "no two original examples (id without ~) have the same prompt and answer",
            # Up-sampled copies repeat their original on purpose; only originals must be distinct.
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=["prompt", "answer"], row_condition=Column(name="copy") == 0
            ),
            lambda r: "an exact duplicate: another example has the same prompt and answer",
            hint="made by generate, which merges exact duplicates (metrics/generate.json: duplicates_merged) unless "
            "their system prompts differ: generate.override_system_prompt: true gives imported ones the same",
        )
        add(
            f"{s}_answer_not_repeated",
            s,
            "no answer is one phrase said over and over (a generation loop or a copy-paste accident)",
            gxe.ExpectColumnValueLengthsToEqual(column="repeated", value=0),
            lambda r: r["repeated"],
            hint="made by extract from the document's own text (a generation loop or a copy-paste accident in it): "
            "fix or remove the document; no param hides it",
        )
        add(
            f"{s}_answer_max_chars",
            s,
            f"no answer is longer than {max_answer_chars} characters (validate.max_answer_chars)",
            gxe.ExpectColumnValuesToBeBetween(column="answer_chars", max_value=max_answer_chars),
            lambda r: (
                f"the answer has {r['answer_chars']:,} characters, validate.max_answer_chars is {max_answer_chars:,}"
            ),
            lambda f: {"observed": int(f["answer_chars"].max())},
            "made by extract (a long section) or an imported conversation: lower extract.max_chars to cut long "
            "sections, or raise validate.max_answer_chars",
        )
    add(
        "val_source_not_in_train",
        "val",
        "no val example comes from a source that train also uses",
        gxe.ExpectColumnValuesToBeInSet(column="source_in_other_split", value_set=[False]),
        lambda r: "its source is also in train",
        hint="made by balance's split (split.val_fraction, split.seed), which keeps each source on one side: were "
        "train and val written by one balance run?",
    )
    add(
        "val_prompt_not_in_train",
        "val",
        "no val prompt occurs in train",
        gxe.ExpectColumnValuesToBeInSet(column="prompt_in_other_split", value_set=[False]),
        lambda r: "its prompt also occurs in train",
        hint="made by generate: two blocks asked the same question; make the task's phrasings in tasks.yaml name "
        "their subject (generate.phrasings_per_item adds wordings, and with them such clashes)",
    )
    add(
        "train_task_ratio",
        "tasks",
        f"no task has more than {max_ratio}x the examples of the smallest (balance.max_ratio)",
        gxe.ExpectColumnValuesToBeBetween(column="ratio", max_value=max_ratio),
        lambda r: f"task {r['task']!r} has {int(r['n'])} examples, {r['ratio']}x the smallest task",
        lambda f: {"observed": float(f["ratio"].max()) if len(f) else 0.0},
        hint="made by balance: raise balance.max_upsample or balance.max_ratio, or add documents for the smallest task",
    )
    lo, hi = round(val_fraction - tolerance, 4), round(val_fraction + tolerance, 4)
    # Balance splits off val_fraction of the sources, then caps each task's val at val_fraction of that task's train +
    # val (metrics/balance/<domain>.json: val_before, val_cap, val): so val is val_fraction of train's distinct
    # examples + val.
    # A share of sources would drift as balance cuts a dominant task; up-sampled copies would drift the other way.
    add(
        "val_share",
        "share",
        f"val holds {val_fraction} ± {tolerance} of the examples, train's up-sampled copies not counted "
        "(split.val_fraction)",
        gxe.ExpectColumnValuesToBeBetween(column="val_share", min_value=lo, max_value=hi),
        lambda r: (
            f"val holds {r['val_share']:.1%} of the examples ({r['n_val']} val, {r['n_train_unique']} distinct "
            f"train), expected {val_fraction:.0%} ± {tolerance:.0%} (split.val_fraction; balance caps val per task: see "
            "metrics/balance/<domain>.json)"
        ),
        lambda f: {"observed": float(f["val_share"].iloc[0]), "source_share": float(f["source_share"].iloc[0])},
        hint="made by balance (split.val_fraction): were train and val split by balance with these params? With few "
        "sources per task whole sources cannot come closer: widen validate.val_fraction_tolerance",
    )
    return found


def quality_frame(counts: dict, problems: list[str]):
    """One row: each problem's share of generate's examples (metrics/quality/<domain>.json) and its count."""
    import pandas as pd

    n = max(1, int(counts.get("examples", 0)))
    row = {"examples": int(counts.get("examples", 0))}
    for name in problems:
        row[name] = round(int(counts.get(name, 0)) / n, 4)
        row[f"{name}_count"] = int(counts.get(name, 0))
    return pd.DataFrame([row])


def quality_checks(max_share: dict[str, float], on_exceed: str) -> list[Check]:
    """One expectation per problem: its share of the examples is at most validate.quality.max_share.<problem>."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations.expectations as gxe

    found = []
    for problem, limit in max_share.items():
        knob = f"validate.quality.max_share.{problem}"
        expectation = gxe.ExpectColumnValuesToBeBetween(
            column=problem, min_value=0, max_value=limit, severity="warning" if on_exceed == "warn" else "critical"
        )
        name = f"quality_{problem}"
        expectation.meta = {"name": name}
        expectation.description = f"{name}: at most {limit:.0%} of the examples ({knob})"

        def why(r, problem=problem, limit=limit, knob=knob):
            return (
                f"{problem}: {int(r[f'{problem}_count'])} of {int(r['examples'])} examples ({r[problem]:.1%}), "
                f"over {knob} {limit}"
            )

        def observed(f, problem=problem, limit=limit):
            share, count = float(f[problem].iloc[0]), int(f[f"{problem}_count"].iloc[0])
            return {"observed": share, "count": count, "max_value": limit}

        hint = (
            f"made by generate: `finetune show examples --domain D --problem {problem}` lists them; fix the documents "
            f"or the task file, or raise {knob} (validate.quality.on_exceed: warn only warns)"
        )
        found.append(Check(name, "quality", expectation, why, observed, hint, warn=on_exceed == "warn"))
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


def summarize(frames: dict, all_checks: list[Check], results: dict) -> tuple[dict, list[str], list[str]]:
    """The metrics entry of each check, in check order, the lines that explain the failed ones and one line per
    failed warning-only check."""
    entries, lines, warnings = {}, [], []
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
        if c.warn:
            entry["severity"] = "warning"
        entries[c.name] = entry
        if r.success:
            continue
        if c.warn:
            warnings += [f"warning: {c.why(frame.loc[label])}" for label in frame.index[:1]]
            continue
        lines.append(
            f"FAILED {c.name}: {entry['unexpected_count']} unexpected" + (f" ({entry['error']})" if error else "")
        )
        if missing:
            lines.append(f"  missing columns: {', '.join(sorted(missing))}")
        labels = list(dict.fromkeys(res.get("partial_unexpected_index_list") or []))
        if not labels and len(frame) == 1:  # a frame of one row (the quality shares): that row
            labels = list(frame.index)
        for label in labels[:SHOW_ROWS]:
            row = frame.loc[label]
            if c.frame in ("train", "val"):
                where = f"{frame.attrs['path']}:{row['line']}"
                lines.append(f"  {where}: id={row.get('id')} source={row.get('source')}: {c.why(row)}")
            else:
                lines.append(f"  {c.why(row)}")
        if c.hint:
            lines.append(f"  {c.hint}")
    return entries, lines, warnings


def run(
    train_path,
    val_path,
    model,
    metrics_path,
    docs,
    tasks,
    max_seq_len,
    max_ratio,
    val_fraction,
    tolerance,
    *,
    max_answer_chars: int = 4000,
    on_overlong: str = "fail",
    train_out=None,
    val_out=None,
    quality: dict | None = None,
    max_share: dict[str, float] | None = None,
    on_exceed: str = "warn",
):
    """Validate train and val; write metrics and Data Docs; return the metrics and the failure lines.

    on_overlong="drop" leaves the examples over max_seq_len out before any check runs, so the checks (task ratio, val
    share, ...) judge what will be trained on, and lists them in the metrics. When every check passes, the kept
    examples go to train_out/val_out (if given): training reads those, never the unchecked input. `quality`
    (generate's counts) is checked against `max_share` per problem; on_exceed="warn" logs what exceeds and passes."""
    tokenizer = load_tokenizer(model)
    t0 = time.perf_counter()
    frames, records, dropped = {}, {}, []
    for split, path in (("train", train_path), ("val", val_path)):
        rows = list(read_jsonl(path))
        records[split] = {n: r for n, r in rows}
        frames[split] = example_frame([r for _, r in rows], tokenizer, path, [n for n, _ in rows])
        if on_overlong == "drop":
            frames[split], overlong = split_overlong(frames[split], max_seq_len)
            dropped += [{"split": split, **entry} for entry in row_entries(overlong)]
    train, val = frames["train"], frames["val"]
    log(
        "validate",
        f"train {len(train)} examples, val {len(val)}; read and tokenised in {time.perf_counter() - t0:.1f} s",
    )
    if dropped:
        log(
            "validate",
            f"left out {len(dropped)} examples over model.max_seq_len {max_seq_len} tokens (validate.on_overlong: "
            f"drop); listed in {metrics_path}",
        )
    mark_overlap(train, val)
    mark_overlap(val, train)
    frames.update(tasks=task_counts(train, tasks), share=split_share(train, val))
    t0 = time.perf_counter()
    all_checks = checks(tasks, max_seq_len, max_ratio, val_fraction, tolerance, max_answer_chars)
    if quality is not None:
        max_share = dict(max_share or {})
        frames["quality"] = quality_frame(quality, list(max_share))
        all_checks += quality_checks(max_share, on_exceed)
    results = run_checks(frames, all_checks, docs)
    log("validate", f"ran {len(all_checks)} expectations and built Data Docs in {time.perf_counter() - t0:.1f} s")
    entries, lines, warnings = summarize(frames, all_checks, results)
    for line in warnings:
        log("validate", line)
    metrics = {
        "success": all(e["success"] or e.get("severity") == "warning" for e in entries.values()),
        "warnings": len(warnings),
        "n_train": len(train),
        "n_val": len(val),
        "overlong": {"on_overlong": on_overlong, "n_dropped": len(dropped), "dropped": dropped},
        "expectations": entries,
    }
    write_json(metrics_path, metrics)
    if metrics["success"]:
        for split, out in (("train", train_out), ("val", val_out)):
            if out is not None:
                write_jsonl(out, (records[split][n] for n in frames[split]["line"]))
    return metrics, lines
