"""The users' own questions on the pages people read first: the HTML report's opening section and compare.md's.

Each question with the base's answer, the adapter's answer and the reference side by side, in full, and the scores
beside val's: the template gap (val's ROUGE-L minus the questions') says how much of what val measures is our
templates' wording rather than what a user asks.
"""

from __future__ import annotations

from html import escape

SCORES = (
    "rouge_l",
    "rouge_l_answered",
    "chrf",
    "exact_match",
    "keypoint_coverage",
    "refusal_accuracy",
    "false_refusal",
    "format_valid",
)
JUDGE = "semantic_match"  # the judge's rate: correct + partly / 2, of the graded answers


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _verdict(side: dict) -> str:
    judged = side.get("judge")
    return f"judge: {judged['verdict']} ({judged['reason']})" if judged else ""


def summary_rows(section: dict) -> list[tuple[str, float | None, float | None]]:
    """(score, base, fine-tuned) for every score the questions have, the judge's rate last."""
    base, tuned = section["baseline"], section["finetuned"]
    rows = [(k, base.get(k), tuned.get(k)) for k in SCORES if k in tuned]
    if "judge" in section:
        rows.append((f"judge {JUDGE}", section["judge"]["baseline"][JUDGE], section["judge"]["finetuned"][JUDGE]))
    return rows


def html_section(result: dict, answers: list[dict]) -> str:
    """`result`: metrics/eval/<domain>.json; `answers`: data/questions/<domain>.jsonl. Empty without questions."""
    section = result.get("questions")
    if not section:
        return ""
    gap = section["template_gap"]
    rows = "".join(
        f'<tr><td class="l">{escape(k)}</td><td>{_num(b)}</td><td>{_num(t)}</td></tr>'
        for k, b, t in summary_rows(section)
    )
    parts = [
        "<h2>Your questions</h2>",
        (
            f'<p class="muted">{section["n"]} questions from domains/&lt;domain&gt;/questions.yaml, in the users\' '
            "own words; greedy answers of both models, scored as val is.</p>"
        ),
        (
            '<div class="wide"><table><thead><tr><th class="l">score</th><th>base</th><th>fine-tuned</th></tr>'
            f"</thead><tbody>{rows}</tbody></table></div>"
        ),
        (
            f"<p><b>Template gap</b>: val's ROUGE-L is {gap['rouge_l']:+.3f} above the questions' for the fine-tuned "
            f"model ({gap['rouge_l_base']:+.3f} for the base): what val measures beyond what the users ask.</p>"
        ),
    ]
    if "reworded" in result:
        r = result["reworded"]
        parts.append(
            f"<p><b>Val reworded by the teacher</b> ({r['n']} questions in words no training example has): "
            f"ROUGE-L {r['finetuned']['rouge_l']:.3f} fine-tuned ({r['baseline']['rouge_l']:.3f} base), "
            f"{r['gap']['rouge_l']:+.3f} below the same questions in our wording.</p>"
        )
    if "judge" in section:
        j = section["judge"]["finetuned"]
        parts.append(
            f'<p class="muted">Judge (fine-tuned): {j["correct"]} correct, {j["partly"]} partly, {j["wrong"]} wrong; '
            f"{j['unparseable']} unparseable, {j['errors']} errors; {j['asked']} asked of the server.</p>"
        )
    for a in answers:
        cols = [
            ("reference", a["reference"]),
            (f"base (ROUGE-L {a['base']['rouge_l']:.2f}) {_verdict(a['base'])}", a["base"]["prediction"]),
            (
                f"fine-tuned (ROUGE-L {a['finetuned']['rouge_l']:.2f}) {_verdict(a['finetuned'])}",
                a["finetuned"]["prediction"],
            ),
        ]
        cells = "".join(f"<div><h4>{escape(h)}</h4><pre>{escape(text)}</pre></div>" for h, text in cols)
        parts.append(
            f'<div class="ex"><div class="prompt">{escape(a["question"])}</div><div class="answers">{cells}</div></div>'
        )
    return "\n".join(parts)


def _cell(text: str) -> str:
    """Text as one Markdown table cell: HTML-escaped (GitHub renders raw HTML), pipes escaped, lines as <br>."""
    return escape(text).replace("|", "\\|").replace("\n", "<br>")


def markdown_section(evals: dict[str, dict], answers: dict[str, list[dict]]) -> str:
    """compare.md's opening: each domain's question scores beside val's, then every question, in full."""
    lines = [
        "# Your questions",
        "",
        "Each domain's own questions (domains/<name>/questions.yaml), in the users' words, answered by the base and",
        "the adapter. Template gap: val's ROUGE-L minus the questions' (fine-tuned): how much of val's score is our",
        "templates' wording.",
        "",
        (
            "| domain | n | ROUGE-L base | ROUGE-L tuned | answered only: base | tuned | chrF base | chrF tuned "
            "| refusals tuned | judge tuned | val ROUGE-L tuned | template gap |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for domain, result in evals.items():
        q = result.get("questions")
        if not q:
            continue
        b, t = q["baseline"], q["finetuned"]
        judge = q["judge"]["finetuned"][JUDGE] if "judge" in q else None
        lines.append(
            f"| {domain} | {q['n']} | {_num(b['rouge_l'])} | {_num(t['rouge_l'])} | "
            f"{_num(b.get('rouge_l_answered'))} | {_num(t.get('rouge_l_answered'))} | {_num(b['chrf'])} | "
            f"{_num(t['chrf'])} | {_num(t.get('refusal_accuracy'))} | {_num(judge)} | "
            f"{_num(result['finetuned']['overall']['rouge_l'])} | {q['template_gap']['rouge_l']:+.3f} |"
        )
    for domain, rows in answers.items():
        if not rows:
            continue
        lines += [
            "",
            f"## {domain}: every question",
            "",
            "| question | reference | base | adapter |",
            "|---|---|---|---|",
        ]
        for a in rows:
            base, tuned = a["base"], a["finetuned"]
            lines.append(
                f"| {_cell(a['question'])} | {_cell(a['reference'])} | "
                f"{_cell(base['prediction'])}<br>*ROUGE-L {base['rouge_l']:.2f}* {_cell(_verdict(base))} | "
                f"{_cell(tuned['prediction'])}<br>*ROUGE-L {tuned['rouge_l']:.2f}* {_cell(_verdict(tuned))} |"
            )
    return "\n".join(lines) + "\n\n"


def compare_keys(result: dict) -> dict:
    """The few flat keys of compare.json's `<domain>.questions.*`: each score and its `_base`, the judge's rate and
    the template gap (headline columns for `dvc exp show`)."""
    q = result.get("questions")
    if not q:
        return {}
    out: dict = {"n": q["n"]}
    for key in (k for k in SCORES if k != "false_refusal"):  # answerable questions refused: on the pages only
        if key in q["finetuned"]:
            out[key], out[f"{key}_base"] = q["finetuned"][key], q["baseline"].get(key)
    if "judge" in q:
        out["judge_rate"], out["judge_rate_base"] = q["judge"]["finetuned"][JUDGE], q["judge"]["baseline"][JUDGE]
    out["template_gap"] = q["template_gap"]["rouge_l"]
    if "reworded" in result:  # with a teacher: val in the teacher's words, and its drop from val's own wording
        out["reworded_rouge_l"] = result["reworded"]["finetuned"]["rouge_l"]
        out["reworded_gap"] = result["reworded"]["gap"]["rouge_l"]
    return out
