"""The evaluation report: a Markdown page with a PNG chart that renders offline, and the CSV behind `dvc plots`."""

from __future__ import annotations

from pathlib import Path

SHOWN = ("rouge_l", "exact_match", "format_valid", "chrf")


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|") or "∅"


def plot_rows(result: dict) -> list[str]:
    """CSV for dvc plots: one bar per (task, model), labelled so the two bars of a task sit together."""
    rows = ["label,task,model,rouge_l"]
    for task in result["finetuned"]:
        for model in ("baseline", "finetuned"):
            rows.append(f"{task} {model},{task},{model},{result[model][task]['rouge_l']:.4f}")
    return rows


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["finetuned"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(tasks) + 1.2))
    ys = range(len(tasks))
    ax.barh([y + 0.2 for y in ys], [result["baseline"][t]["rouge_l"] for t in tasks], 0.4, label="baseline")
    ax.barh([y - 0.2 for y in ys], [result["finetuned"][t]["rouge_l"] for t in tasks], 0.4, label="fine-tuned")
    ax.set_yticks(list(ys), tasks)
    ax.invert_yaxis()
    ax.set_xlabel("ROUGE-L")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")  # path may be a temp name without .png
    plt.close(fig)


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
    lines += [
        "",
        f"Latency (fine-tuned, batched): p50 {overall['latency_p50_ms']:.1f} ms, "
        f"p95 {overall['latency_p95_ms']:.1f} ms per example, {overall['tokens_per_second']:.0f} tokens/s",
        "",
    ]
    lines += ["## Examples", ""]
    by_id = {r["id"]: r for r in base_rows}
    for task in [t for t in result["finetuned"] if t != "overall"]:
        rows = [r for r in tuned_rows if r["task"] == task][:per_task]
        lines += [f"### {task}", "", "| prompt | reference | baseline | fine-tuned |", "|---|---|---|---|"]
        for r in rows:
            b = by_id.get(r["id"], {}).get("prediction", "")
            lines.append(f"| {_cell(r['prompt'])} | {_cell(r['reference'])} | {_cell(b)} | {_cell(r['prediction'])} |")
        lines.append("")
    return "\n".join(lines)
