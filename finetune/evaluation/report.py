"""The evaluation report: a Markdown page with a PNG chart that renders offline, and the CSV behind `dvc plots`."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

SHOWN = ("rouge_l", "exact_match", "format_valid", "chrf")

# An answer longer than this many lines or characters is folded into a <details> block (GitHub, GitLab and VS
# Code render it as a collapsible section), so a long procedure does not push the other examples off the screen.
FOLD_LINES, FOLD_CHARS = 6, 400


def _fence(text: str) -> str:
    """A fenced code block that keeps every line break; the fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text or '∅'}\n{fence}"


def _answer(title: str, text: str) -> list[str]:
    """One answer in full under its title; folded when long, the title (and first line) staying visible."""
    if len(text.splitlines()) > FOLD_LINES or len(text) > FOLD_CHARS:
        first = " ".join(text.split("\n", 1)[0].split())[:80]
        summary = escape(f"{title}: {first}…")
        return ["<details>", f"<summary>{summary}</summary>", "", _fence(text), "", "</details>", ""]
    return [f"**{title}**", "", _fence(text), ""]


def plot_rows(result: dict) -> list[str]:
    """CSV for dvc plots: one bar per (task, model), labelled so the two bars of a task sit together."""
    rows = ["label,task,model,rouge_l"]
    for task in result["finetuned"]:
        for model in ("baseline", "finetuned"):
            rows.append(f"{task} {model},{task},{model},{result[model][task]['rouge_l']:.4f}")
    return rows


def chart(result: dict, path: Path) -> None:
    fig = figure(result)  # first: it picks the Agg backend before pyplot is imported
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, format="png")  # path may be a temp name without .png
    plt.close(fig)


def figure(result: dict):
    """ROUGE-L per task, both models' bars side by side, each task labelled with its number of val examples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["finetuned"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(tasks) + 1.2))
    ys = range(len(tasks))
    ax.barh([y + 0.2 for y in ys], [result["baseline"][t]["rouge_l"] for t in tasks], 0.4, label="baseline")
    ax.barh([y - 0.2 for y in ys], [result["finetuned"][t]["rouge_l"] for t in tasks], 0.4, label="fine-tuned")
    ax.set_yticks(list(ys), [f"{t} (n={result['finetuned'][t]['n']})" for t in tasks])
    ax.invert_yaxis()
    ax.set_xlabel("ROUGE-L")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    n = result["finetuned"]["overall"]["n"]
    ax.set_title(f"ROUGE-L per task, baseline vs fine-tuned ({n} val examples)")
    fig.tight_layout()
    return fig


def markdown(result: dict, base_rows: list[dict], tuned_rows: list[dict], per_task: int, png_name: str) -> str:
    lines = ["# Evaluation: base model vs fine-tuned adapter", ""]
    n = result["finetuned"]["overall"]["n"]
    lines += [
        f"Greedy generation on the {n} val examples. Δ = fine-tuned − baseline.",
        "",
        f"![ROUGE-L per task]({png_name})",
        "",
    ]
    header = "| task | n | " + " | ".join(f"{m} base | {m} tuned | Δ" for m in SHOWN) + " |"
    lines += [header, "|" + "---|" * (2 + 3 * len(SHOWN))]
    for task, tuned in result["finetuned"].items():
        base, d = result["baseline"][task], result["delta"][task]
        cells = " | ".join(f"{base[m]:.3f} | {tuned[m]:.3f} | {d[m]:+.3f}" for m in SHOWN)
        lines.append(f"| {task} | {tuned['n']} | {cells} |")
    overall = result["finetuned"]["overall"]
    extra = [k for k in ("refusal_accuracy", "false_refusal", "keypoint_coverage") if k in overall]
    if extra:
        lines += [
            "",
            "Overall: "
            + ", ".join(f"{k} {result['baseline']['overall'].get(k, 0):.3f} → {overall[k]:.3f}" for k in extra),
        ]
    if "latency_p50_ms" in overall:  # a served model's (evaluate --endpoint); a DVC run's are in metrics/timing/
        latency = (
            f"Latency (served): p50 {overall['latency_p50_ms']:.1f} ms, "
            f"p95 {overall['latency_p95_ms']:.1f} ms per example, {overall['tokens_per_second']:.0f} tokens/s"
        )
        lines += ["", latency]
    lines += ["", "## Examples", "", "Answers in full, line breaks kept; long ones are folded.", ""]
    by_id = {r["id"]: r for r in base_rows}
    for task in [t for t in result["finetuned"] if t != "overall"]:
        rows = [r for r in tuned_rows if r["task"] == task][:per_task]
        lines += [f"### {task}", ""]
        for i, r in enumerate(rows, start=1):
            lines += [f"#### {task} example {i}", "", *_answer("Prompt", r["prompt"])]
            lines += _answer("Reference", r["reference"])
            lines += _answer("Baseline", by_id.get(r["id"], {}).get("prediction", ""))
            lines += _answer("Fine-tuned", r["prediction"])
    return "\n".join(lines)
