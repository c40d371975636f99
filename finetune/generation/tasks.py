"""The task registry: each task type defined in one place.

A task says which blocks it reads, how it phrases the question (several phrasings, chosen deterministically),
how the answer is built from the block, and the format check evaluate applies to a model's answer. Editing a
phrasing here reruns `generate` and everything after it (dvc.yaml lists this file in their deps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

HEADING_WORDS = ("Specifications", "Procedure", "Explanation", "Wiring", "Troubleshooting")
_HEADING = re.compile(rf"^({'|'.join(HEADING_WORDS)})\s*[—–-]\s*(.+)$", re.IGNORECASE)
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True)
class Item:
    fields: dict  # values for the phrasing placeholders
    answer: str
    meta: dict


@dataclass(frozen=True)
class Task:
    name: str
    kinds: tuple[str, ...]  # block kinds it reads; empty = not block-based (REFUSAL)
    phrasings: tuple[str, ...]
    items: Callable[[dict], list[Item]]
    check: Callable[[str, dict], bool]  # format check of a model's answer, given the example's meta


def title_parts(title: str) -> tuple[str, str]:
    """(family, topic) from a heading path such as
    `Brenntal Service Manual — Heating / Calora gas condensing boilers / Specifications — CA-24C` or
    `Aquis / Specifications / AQ-200` (PDF pages)."""
    parts = [p.strip() for p in title.split(" / ") if p.strip()]
    parts = [p for p in parts if "manual" not in p.lower()] or parts
    last = parts[-1]
    m = _HEADING.match(last)
    topic = m.group(2) if m else last
    rest = [p for p in parts[:-1] if p.split()[0] not in HEADING_WORDS]
    family = rest[0].split()[0] if rest else ""
    return family, topic


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() else s


# --- item builders: block -> facts ---------------------------------------------------------------------------


def terminology_items(block: dict) -> list[Item]:
    row = block["rows"][0]
    answer = f"{row['name']} ({row['model_code']}, {row['rating']} {row['unit']})"
    meta = {"name": row["name"], "model_code": row["model_code"]}
    return [Item({"informal": n.strip()}, answer, meta) for n in row["informal_names"].split(";") if n.strip()]


def spec_items(block: dict) -> list[Item]:
    family, topic = title_parts(block["title"])
    out = []
    for row in block["rows"]:
        param, value, unit = row.get("Parameter", ""), row.get("Value", ""), row.get("Unit", "")
        if not (param and value):
            continue
        answer = f"{value} {unit}".strip()
        out.append(
            Item({"parameter": _lower_first(param), "subject": topic, "family": family}, answer, {"unit": unit})
        )
    return out


def procedure_items(block: dict) -> list[Item]:
    family, topic = title_parts(block["title"])
    steps = block.get("items") or []
    answer = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))
    return [Item({"topic": _lower_first(topic), "family": family}, answer, {"keypoints": steps})] if steps else []


def explanation_items(block: dict) -> list[Item]:
    heading = block["title"].split(" / ")[-1]
    if heading.split()[0] in HEADING_WORDS and not heading.startswith("Explanation"):
        return []  # the intro sentence of a procedure or table is not an explanation
    family, topic = title_parts(block["title"])
    if not family:
        return []  # a document's preface ("This manual covers …") answers no question anyone asks
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", block["text"].strip()) if s]
    return [Item({"topic": _lower_first(topic), "family": family}, block["text"].strip(), {"keypoints": sentences})]


def wiring_items(block: dict) -> list[Item]:
    family, topic = title_parts(block["title"])
    notes = block.get("items") or [block["text"]]
    answer = "\n".join(f"- {n}" for n in notes)
    return [Item({"topic": _lower_first(topic), "family": family}, answer, {"keypoints": notes})]


def troubleshooting_items(block: dict) -> list[Item]:
    family, _ = title_parts(block["title"])
    out = []
    for row in block["rows"]:
        symptom, cause, remedy = row.get("Symptom", ""), row.get("Cause", ""), row.get("Remedy", "")
        if symptom and cause and remedy:
            out.append(
                Item({"symptom": symptom.rstrip("."), "family": family}, f"Cause: {cause}\nRemedy: {remedy}", {})
            )
    return out


def qa_items(block: dict) -> list[Item]:
    msgs = [m for m in block["messages"] if m["role"] != "system"]
    return [Item({"question": msgs[0]["content"]}, msgs[-1]["content"], {"turns": msgs})]


# Out-of-domain questions the assistant must decline (answer: params generate.refusal).
OUT_OF_DOMAIN = (
    "What is the capital of Australia?",
    "Can you write me a poem about autumn?",
    "How do I bake sourdough bread?",
    "Who won the football world cup in 2014?",
    "What is the best smartphone to buy this year?",
    "Translate 'good morning' into Japanese.",
    "How do I fix a flat bicycle tyre?",
    "What is the square root of 1764?",
    "Recommend a good science-fiction novel.",
    "How do I reset my e-mail password?",
    "What will the weather be like tomorrow?",
    "Explain how a stock market index works.",
    "What is a healthy breakfast?",
    "How do I change the oil in my car?",
    "Write a cover letter for a marketing job.",
    "Which programming language should I learn first?",
    "How many moons does Jupiter have?",
    "What are the rules of chess castling?",
    "Give me a recipe for tomato soup.",
    "How do I train my dog to sit?",
    "What is the population of Brazil?",
    "Summarise the plot of Hamlet.",
    "How do I install a washing machine?",
    "What does a solicitor charge for a will?",
)


def refusal_items(_block: dict | None = None) -> list[Item]:
    return [Item({"question": q}, "", {}) for q in OUT_OF_DOMAIN]


# --- format checks: is a model's answer shaped like a valid answer of this task? -------------------------------

_CATALOG_ANSWER = re.compile(r"^Brenntal \w+ (?P<code>[A-Z]{2}-\w+) .+ \((?P=code), [\d.]+ \S+\)$")


def _numbered_steps(answer: str) -> bool:
    lines = [ln.strip() for ln in answer.splitlines() if ln.strip()]
    return len(lines) >= 2 and all(ln.startswith(f"{i}. ") for i, ln in enumerate(lines, start=1))


def _has_value_with_unit(answer: str, meta: dict) -> bool:
    unit = meta.get("unit", "")
    return bool(_NUMBER.search(answer)) and (not unit or unit.casefold() in answer.casefold())


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "TERMINOLOGY",
            ("catalog_row",),
            (
                'What is the exact catalog name for "{informal}"?',
                'A customer wrote "{informal}". Which catalog product is that?',
                "Normalise to the catalog name: {informal}",
            ),
            terminology_items,
            # The catalog-name shape, with the same model code in the name and in brackets.
            lambda answer, meta: bool(_CATALOG_ANSWER.match(answer.strip())),
        ),
        Task(
            "SPEC",
            ("spec_table",),
            (
                "What is the {parameter} of the {subject}?",
                "{subject}: {parameter}?",
                "Tell me the {parameter} for the {subject}.",
            ),
            spec_items,
            _has_value_with_unit,
        ),
        Task(
            "PROCEDURE",
            ("procedure",),
            (
                "How do I do this on a {family}: {topic}?",
                "List the steps for {topic} ({family}).",
                "{family}, {topic}: what are the steps?",
            ),
            procedure_items,
            lambda answer, meta: _numbered_steps(answer),
        ),
        Task(
            "EXPLANATION",
            ("prose",),
            ("Explain this for the {family}: {topic}.", "{family}: {topic}?", "Why or how, on a {family}: {topic}?"),
            explanation_items,
            lambda answer, meta: len(answer.split()) >= 8 and answer.rstrip().endswith((".", "!", "?")),
        ),
        Task(
            "WIRING",
            ("wiring",),
            ("What are the wiring notes for {topic} on the {family}?", "{family} wiring: {topic}?"),
            wiring_items,
            lambda answer, meta: any(ln.strip().startswith("- ") for ln in answer.splitlines()),
        ),
        Task(
            "TROUBLESHOOTING",
            ("troubleshooting",),
            (
                "{family}: {symptom}. What is the cause and the remedy?",
                "My {family} shows this: {symptom}. What should I do?",
                "Troubleshoot a {family}: {symptom}.",
            ),
            troubleshooting_items,
            lambda answer, meta: "Cause:" in answer and "Remedy:" in answer,
        ),
        Task("QA", ("qa",), ("{question}",), qa_items, lambda answer, meta: bool(answer.strip())),
        Task(
            "REFUSAL",
            (),
            ("{question}",),
            refusal_items,
            lambda answer, meta: answer.strip().casefold() == meta["refusal"].strip().casefold(),
        ),
    )
}
