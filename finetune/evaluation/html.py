"""The run report as one self-contained HTML page: inline CSS, inline SVG charts, no script, nothing fetched.

`page(runs, out_dir, per_task)` renders a list of runs (one per domain, later), each with its data, training,
evaluation and before/after answers. Links (the Data Docs) are relative to `out_dir`, where the page is written,
so the report folder can be opened straight from disk or from a copy of the repository.
"""

from __future__ import annotations

import os
from html import escape

from finetune.evaluation.question_report import html_section
from finetune.evaluation.runfiles import Run
from finetune.evaluation.svg import bar_chart, line_chart

SHOWN = ("rouge_l", "exact_match", "format_valid", "chrf")

# Inline: an external stylesheet or web font is a request the offline page must not make.
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:0 20px 40px;
color:#1a1a1a;background:#fff;line-height:1.4}
h1{border-bottom:2px solid #0072b2;padding-bottom:6px}h2{margin-top:32px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f3f6f9}td.l,th.l{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.pass{color:#fff;background:#009e73;padding:1px 8px;border-radius:3px}
.fail{color:#fff;background:#d55e00;padding:1px 8px;border-radius:3px}
.warn{color:#1a1a1a;background:#f0e442;padding:1px 8px;border-radius:3px}
.up{color:#006d4f}.down{color:#b34700}
.ex{border:1px solid #ddd;border-radius:4px;margin:10px 0;padding:8px}
.ex .prompt{white-space:pre-wrap;font-weight:600;margin-bottom:6px}
.answers{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
.answers h4{margin:0 0 2px;font-size:12px;color:#555}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;margin:0;padding:6px;font-size:12px;min-height:1em}
.muted{color:#666;font-size:13px}.wide{overflow-x:auto;max-width:100%}
"""


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _delta(value: float | None) -> str:
    if value is None:
        return "<td>–</td>"
    cls = "up" if value > 0 else "down" if value < 0 else ""
    return f'<td class="{cls}">{value:+.3f}</td>'


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Cells are HTML already; the first `left` columns are text, aligned left, the rest numbers."""

    def cell(tag: str, i: int, text: str) -> str:
        return f'<{tag} class="l">{text}</{tag}>' if i < left else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else cell("td", i, c) for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    # The wrapper scrolls a wide table (the per-task scores) sideways instead of pushing the page wider.
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _counts_table(columns: dict[str, dict[str, int]]) -> str:
    keys = sorted({k for counts in columns.values() for k in counts})
    rows = [[escape(k)] + [_num(counts.get(k, 0)) for counts in columns.values()] for k in keys]
    rows.append(["<b>total</b>"] + [_num(sum(counts.values())) for counts in columns.values()])
    return _table(["", *columns], rows)


def data_section(run: Run, out_dir: str) -> str:
    ex, bal, val = run.extract, run.balance, run.validation
    blocks = ex.get("blocks", {})
    parts = ["<h2>Data</h2>", "<h3>Blocks per source kind</h3>", '<div class="charts">']
    parts.append(_counts_table({"blocks": blocks}))
    parts.append(bar_chart("Blocks per source kind", list(blocks), {"blocks": list(blocks.values())}, "blocks"))
    parts.append("</div>")
    files = ex.get("files", {})
    if files:
        read = ", ".join(f"{escape(k)} {v}" for k, v in files.items() if v)
        parts.append(f'<p class="muted">Files read per format: {read or "none"}.</p>')

    parts.append("<h3>Examples per task, before and after balancing</h3>")
    columns = {
        "generated": run.generate.get("per_task", {}),
        "train before": bal.get("train_before", {}),
        "train after": bal.get("train_after", {}),
        "val": bal.get("val", {}),
    }
    tasks = sorted(set(columns["train before"]) | set(columns["train after"]))
    chart = bar_chart(
        "Train examples per task",
        tasks,
        {
            "before balancing": [columns["train before"].get(t, 0) for t in tasks],
            "after balancing": [columns["train after"].get(t, 0) for t in tasks],
        },
        "examples",
    )
    parts += ['<div class="charts">', _counts_table(columns), chart, "</div>"]
    if "ratio_before" in bal:
        parts.append(
            f'<p class="muted">Largest / smallest task in train: {bal["ratio_before"]:.2f} before, '
            f"{bal['ratio_after']:.2f} after balancing; val is {_num(bal.get('val_share'))} of train's distinct "
            f"examples + val ({bal.get('n_val_cut', 0)} val examples cut in step with train).</p>"
        )

    parts.append(f"<h3>Rejects ({len(run.rejects)})</h3>")
    if run.rejects:
        # Each reject names its file, where in it (line, row or page: whichever the reader knows) and the rule.
        where_keys = [k for k in ("line", "row", "page") if any(k in r for r in run.rejects)]
        rows = [
            [
                escape(str(r.get("path", ""))),
                *[escape(str(r.get(k, ""))) for k in where_keys],
                escape(r.get("rule", "")),
            ]
            for r in run.rejects
        ]
        parts.append(_table(["file", *where_keys, "rule"], rows, left=2 + len(where_keys)))
    else:
        parts.append('<p class="muted">Nothing was left out by extract.</p>')

    ok, warnings = val.get("success"), val.get("warnings", 0)
    docs = os.path.relpath(run.files.data_docs / "index.html", out_dir).replace(os.sep, "/")
    # "passed" alone over data with known problems told the user nothing: a passing run with warnings says so.
    if not ok:
        kind, said = "fail", "FAILED"
    elif warnings:
        kind, said = "warn", f"passed with {warnings} quality warning{'s' if warnings != 1 else ''}"
    else:
        kind, said = "pass", "passed"
    parts.append(
        f'<h3>Validation <span class="{kind}">{said}</span></h3>'
        f"<p>{_num(val.get('n_train'))} train and {_num(val.get('n_val'))} val examples checked by Great "
        f'Expectations. <a href="{escape(docs)}">Data Docs</a> (every expectation with its details).</p>'
    )
    rows = []
    for name, e in val.get("expectations", {}).items():
        rows.append([escape(name), _result(e, "pass"), _num(e.get("unexpected_count")), _num(e.get("observed"))])
    parts.append(_table(["expectation", "result", "unexpected", "observed"], rows, left=2))
    return "\n".join(parts)


def _result(expectation: dict, passed: str) -> str:
    """An expectation's outcome as a badge: passed, a warning (severity: warning passes the gate), or failed."""
    if expectation.get("success"):
        return f'<span class="pass">{passed}</span>'
    if expectation.get("severity") == "warning":
        return '<span class="warn">warning</span>'
    return '<span class="fail">fail</span>'


def quality_section(run: Run) -> str:
    """generate's counts of the bad examples we know, each with its share, validate's threshold and result, and the
    worst few examples of every problem found."""
    q = run.quality
    if not q:
        return ""
    entries = run.validation.get("expectations", {})
    problems = [k for k in q if f"{k}_of" in q]
    n = max(1, q.get("examples", 0))
    rows = []
    for p in problems:
        e = entries.get(f"quality_{p}", {})
        result = _result(e, "ok") if e else "–"
        limit = f"{e['max_value']:.1%}" if "max_value" in e else "–"
        rows.append([escape(p), _num(q[p]), _num(q[f"{p}_of"]), f"{q[p] / n:.1%}", limit, result])
    parts = [
        "<h2>Data quality</h2>",
        f'<p class="muted">{_num(q.get("flagged", 0))} of {_num(q.get("examples", 0))} generated examples have at '
        "least one known problem. Share: of all examples; checked: the examples a check applies to; threshold: "
        "validate.quality.max_share. <code>finetune show examples --domain D --problem NAME</code> lists them "
        "all.</p>",
        _table(["problem", "examples", "checked", "share", "threshold", "result"], rows, left=1),
    ]
    for p in problems:
        worst = run.quality_examples.get(p) or []
        if not q[p] or not worst:
            continue
        parts.append(f"<h3>{escape(p)}: the {len(worst)} worst of {_num(q[p])}</h3>")
        for w in worst:
            parts.append(
                f'<div class="ex"><div class="prompt">{escape(w.get("question", ""))}</div>'
                f"<pre>{escape(w.get('answer', ''))}</pre></div>"
            )
    return "\n".join(parts)


def training_section(run: Run) -> str:
    t, c = run.train, run.curves
    rows = [
        ["train loss", _num(t.get("train_loss"), 4)],
        ["val loss (best model)", _num(t.get("eval_loss"), 4)],
        ["best val loss", _num(t.get("best_eval_loss"), 4)],
        ["best epoch", _num(t.get("best_epoch"), 2)],
        ["mean token accuracy (val)", _num(t.get("mean_token_accuracy"))],
        ["epochs run", _num(t.get("epochs"), 2)],
        ["optimiser steps", _num(t.get("global_step"))],
        ["tokens processed", _num(t.get("tokens_processed"))],
        ["trainable parameters", f"{_num(t.get('trainable_params'))} ({_num(t.get('trainable_percent'), 2)} %)"],
        ["processes", _num(t.get("num_processes"))],
    ]
    best = None
    if c["eval/loss"]:
        step, loss = min(c["eval/loss"], key=lambda p: p[1])
        best = (step, loss, f"best {loss:.3f}")
    charts = [
        line_chart("Loss", {"train": c["loss"], "val": c["eval/loss"]}, "step", "loss", best),
        line_chart(
            "Token accuracy",
            {"train": c["mean_token_accuracy"], "val": c["eval/mean_token_accuracy"]},
            "step",
            "mean token accuracy",
        ),
        line_chart("Learning rate", {"learning rate": c["learning_rate"]}, "step", "learning rate"),
    ]
    # Runtime, tokens/s, peak memory and GPU cost differ on every run: they are in metrics/timing/train/, not in this
    # page, which must be the same bytes for the same inputs.
    timing = '<p class="muted">Runtime, tokens/s, peak memory and GPU cost: metrics/timing/train/ (not versioned).</p>'
    return "\n".join(
        ["<h2>Training</h2>", timing, '<div class="charts">', _table(["", "value"], rows), *charts, "</div>"]
    )


def evaluation_section(run: Run) -> str:
    result = run.eval
    tuned, base, delta = result["finetuned"], result["baseline"], result["delta"]
    header = ["task", "n"] + [f"{m} {side}" for m in SHOWN for side in ("base", "tuned", "Δ")]
    rows = []
    for task, scores in tuned.items():
        cells = [f"<b>{escape(task)}</b>" if task == "overall" else escape(task), _num(scores.get("n"))]
        for m in SHOWN:
            cells += [_num(base.get(task, {}).get(m)), _num(scores.get(m)), _delta(delta.get(task, {}).get(m))]
        rows.append(cells)
    tasks = [t for t in tuned if t != "overall"]
    chart = bar_chart(
        f"ROUGE-L per task, baseline vs fine-tuned ({tuned['overall']['n']} val examples)",
        [f"{t} (n={tuned[t]['n']})" for t in tasks],
        {
            "baseline": [base.get(t, {}).get("rouge_l", 0.0) for t in tasks],
            "fine-tuned": [tuned[t]["rouge_l"] for t in tasks],
        },
        "ROUGE-L",
        x_max=1.0,
        width=680,
    )
    o = tuned["overall"]
    extra = [k for k in ("refusal_accuracy", "false_refusal", "keypoint_coverage") if k in o]
    lines = [
        "<h2>Evaluation</h2>",
        f'<p class="muted">Greedy answers to the {o["n"]} val examples; Δ = fine-tuned − baseline.</p>',
        _table(header, rows),
    ]
    if extra:
        lines.append(
            "<p>" + ", ".join(f"{escape(k)} {_num(base['overall'].get(k))} → {_num(o[k])}" for k in extra) + "</p>"
        )
    lines.append(chart)
    return "\n".join(lines)


def answers_section(run: Run, per_task: int) -> str:
    from finetune.evaluation.metrics import rouge_l

    by_id = {r["id"]: r for r in run.baseline_rows}
    parts = [
        "<h2>Answers before and after fine-tuning</h2>",
        f'<p class="muted">The first {per_task} val examples of each task, in full.</p>',
    ]
    tasks = list(dict.fromkeys(r["task"] for r in run.tuned_rows))
    for task in sorted(tasks):
        rows = [r for r in run.tuned_rows if r["task"] == task][:per_task]
        parts.append(f"<h3>{escape(task)}</h3>")
        for r in rows:
            before = by_id.get(r["id"], {}).get("prediction", "")
            cols = [
                ("reference", r["reference"]),
                (f"baseline (ROUGE-L {rouge_l(before, r['reference']):.2f})", before),
                (f"fine-tuned (ROUGE-L {rouge_l(r['prediction'], r['reference']):.2f})", r["prediction"]),
            ]
            answers = "".join(f"<div><h4>{escape(h)}</h4><pre>{escape(text)}</pre></div>" for h, text in cols)
            parts.append(
                f'<div class="ex"><div class="prompt">{escape(r["prompt"])}</div>'
                f'<div class="answers">{answers}</div></div>'
            )
    return "\n".join(parts)


def page(runs: list[Run], out_dir: str | os.PathLike, per_task: int) -> str:
    """The whole report for these runs; `out_dir` is the folder the page will be written to."""
    out_dir = os.fspath(out_dir)
    several = len(runs) > 1
    body = []
    for run in runs:
        if several:
            body.append(f'<section><h1 class="run">{escape(run.name)}</h1>')
        body += [
            # First: the users' own questions, the page's answer to "does it answer what they ask?"
            html_section(run.eval, run.questions),
            data_section(run, out_dir),
            quality_section(run),
            training_section(run),
            evaluation_section(run),
            answers_section(run, per_task),
        ]
        if several:
            body.append("</section>")
    title = "Fine-tuning run report" + (f": {runs[0].name}" if len(runs) == 1 and runs[0].name else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # The page must stay offline: this forbids every fetch (scripts, styles, fonts, images) except inline ones.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>" + "\n".join(body) + "</body></html>\n"
    )
