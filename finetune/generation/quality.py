"""Counts of the kinds of bad training example we know, over one domain's examples and the blocks they came from.

`measure(examples, blocks, rules)` returns flat counts, one per problem, each with `<problem>_of` (how many examples
the check applies to), `flagged` (examples with any problem) and `worst`: up to `rules.worst` examples per problem
({id, question, answer}), worst first, ties in file order. Deterministic; one pass over the examples per problem plus
indexes of the blocks, so linear in examples and blocks (pasted_lead_in also reads each example's block sentences).

Every rule is structural (shape, punctuation, which document a block is in); what words mean in a language (function
words, instruction verbs) comes in `Rules`, from params or a task file, and a check that needs words it was not given
counts nothing. The question is the last user turn without its task prefix ("[QA] "); the answer the last assistant
turn; an example's document is its block's source file (the source up to the first "#").

    ambiguous            examples whose question (case folded, whitespace and end punctuation ignored, with the turns
                         before it) occurs more than once with different answers: a model cannot learn both
    unnamed_subject      examples from a block whose own heading is the heading of a block in another document, whose
                         question names none of its document's distinctive names (file stem or first heading, those
                         no other document has): "What should I know about Installation?" of thirty READMEs
    toc_subject          examples from a table-of-contents block (at least 60% of its lines or items are entries: a
                         title ending on a page number after dot leaders, a tab or two spaces, a title of at most 8
                         words and a page number, or one of the document's own headings; text run together counts its
                         dot-leader entries, 1 per 8 words being all of it, as a table does), or under a heading that
                         titles only such blocks ("… of the CONTENTS")
    number_subject       examples from a block whose own heading is only a number (a page, section or version
                         number: "1", "iv", "2.3"): its question asks about nothing
    dangling_lead_in     answers that end on a lead-in mark (rules.lead_in_marks, ":"), the thing it led to missing
    bare_code            answers holding code (a fence, or the code of their code block) with fewer than
                         rules.min_explanation_words words outside it: code with no sentence to say what it does
    pasted_lead_in       questions holding a whole sentence of their block (its lead, or a sentence of its text) of
                         at least rules.min_pasted_words words: "How do I let's suppose your goal is …?"; one that
                         starts with an instruction word (rules.instruction_words) reads as the user's own request
                         ("How do I restore all links …?") and is not counted
    fragment_answer      answers of a definitions block (rules.fragment_kinds) that are not a sentence: the first
                         word letters only and lower case ("do not ignore …"; not "/etc/shadow is …"), or no end mark
                         (rules.sentence_ends) at the end
    non_procedure_steps  answers of a list block (rules.steps_kinds) numbered as steps, where fewer than
                         rules.min_instruction_share of the items read as instructions: an item is none when it has
                         under 3 words, ends on a lead-in mark or page number, or (given rules.instruction_words)
                         starts with no instruction word of any language; fewer than 2 items is no procedure
    boilerplate_repeat   answers of at least rules.min_boilerplate_words words that are word for word (case folded)
                         an answer from another document
    mixed_language       examples whose question and answer are in different languages, or whose question has
                         at least 2 function words of each of two languages (rules.stopwords, language -> words; a
                         word in two languages' lists counts for neither; a text's language is the one with the most
                         function words, at least 2, and more than any other)
    too_long             examples over rules.max_tokens (None: never), all turns counted at rules.chars_per_token
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from finetune.generation.builders import headings, sentences

PROBLEMS = (
    "ambiguous",
    "unnamed_subject",
    "toc_subject",
    "number_subject",
    "dangling_lead_in",
    "bare_code",
    "pasted_lead_in",
    "fragment_answer",
    "non_procedure_steps",
    "boilerplate_repeat",
    "mixed_language",
    "too_long",
)
SHOW_CHARS = 300  # of a question or answer quoted under `worst`: enough to judge it, short enough to read a list

_PREFIX = re.compile(r"^\s*\[[^\]\n]{1,40}\]\s*")  # the task prefix "[QA] ", "[SPEC] "
_WORD = re.compile(r"\w+")
# A fence opens a line and a line like it closes it: "~~~~" under a title in running text is no code.
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+(.*\S)\s*$", re.MULTILINE)
# A table-of-contents entry: a title, then dot leaders ("1.2 Overview . . . . 5") or a run of spaces, and a page
# number (arabic or a short roman one) at the end of a line or before the next entry.
_LEADERS = re.compile(r"(?:\.\s?){4,}\s*(?:\d{1,4}|[ivxlc]{1,6})\b", re.IGNORECASE)
_PAGE_AT_END = re.compile(r"(?:(?:\.\s?){2,}|\s{2,}|\t)(?:\d{1,4}|[ivxlc]{1,6})\s*$", re.IGNORECASE)
_SHORT_PAGE_AT_END = re.compile(r"^\D*[^\W\d_]\D*\s(?:\d{1,4}|[ivxlc]{1,6})\s*$", re.IGNORECASE)  # "Usage 5"
_NUMBER_HEADING = re.compile(r"^(?=.*[\divxIVX])[\divxIVX.\-–\s]{1,8}$")  # "1", "iv", "2.3"; not an option "--"
_CLOSERS = "\"'”’»)]}*_`"


@dataclass(frozen=True)
class Rules:
    """What the checks need to know beyond structure; words of a language come from params or the task file."""

    stopwords: Mapping[str, frozenset[str]] = field(default_factory=dict)  # language -> its function words
    instruction_words: Mapping[str, frozenset[str]] = field(
        default_factory=dict
    )  # language -> words a step starts with
    max_tokens: int | None = None
    chars_per_token: float = 3.0  # the tiny tokenizer measures ~3.9 chars/token on prose: 3 errs towards too long
    count_tokens: Callable[[str], int] | None = None  # a real tokenizer's count; None: chars / chars_per_token
    lead_in_marks: str = ":："
    sentence_ends: str = ".!?。！？"
    min_explanation_words: int = 3
    min_pasted_words: int = 5  # a shorter phrase ("sync two folders") may well be a question's own words
    min_boilerplate_words: int = 5  # "3.3 V" in two datasheets is a coincidence of facts, not boilerplate
    min_instruction_share: float = 0.5
    fragment_kinds: tuple[str, ...] = ("definitions",)
    steps_kinds: tuple[str, ...] = ("list",)
    worst: int = 3

    @classmethod
    def from_mapping(cls, m: Mapping | None) -> Rules:
        """From params/task-file data: word lists as lists, everything else by name."""
        m = dict(m or {})
        for key in ("stopwords", "instruction_words"):
            if key in m:
                m[key] = {lang: frozenset(w.casefold() for w in words) for lang, words in (m[key] or {}).items()}
        for key in ("fragment_kinds", "steps_kinds"):
            if key in m:
                m[key] = tuple(m[key])
        return cls(**m)


@dataclass(frozen=True)
class _Ex:
    index: int
    id: str
    question: str
    answer: str
    history: tuple[str, ...]
    block: dict | None
    document: str
    text: str  # every turn, for the length


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip(" .?!:;。？！")


def _document(source: str) -> str:
    return source.split("#", 1)[0]


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def _prepare(examples: list[dict], blocks: list[dict]) -> list[_Ex]:
    by_id = {b.get("id"): b for b in blocks}
    out = []
    for i, e in enumerate(examples):
        messages = [m for m in e.get("messages") or [] if isinstance(m, dict)]
        turns = [m for m in messages if m.get("role") != "system"]
        users = [n for n, m in enumerate(turns) if m.get("role") == "user"]
        last_user = users[-1] if users else len(turns)
        answer = next((m.get("content", "") for m in reversed(turns) if m.get("role") == "assistant"), "")
        question = _PREFIX.sub("", turns[last_user].get("content", "")) if users else ""
        history = tuple(_norm(_PREFIX.sub("", m.get("content", ""))) for m in turns[:last_user])
        block = by_id.get(e.get("block_id"))
        document = _document(block["source"] if block else e.get("source", ""))
        text = "\n".join(m.get("content", "") for m in messages)
        out.append(_Ex(i, str(e.get("id", i)), question, answer, history, block, document, text))
    return out


# --- the checks: each returns (how many examples it applies to, {example index: severity}) -------------------


def ambiguous(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    groups: dict[tuple, list[_Ex]] = defaultdict(list)
    for x in exs:
        groups[(x.history, _norm(x.question))].append(x)
    flagged = {}
    for members in groups.values():
        answers = {_norm(x.answer) for x in members}
        if len(answers) > 1:
            flagged |= {x.index: len(answers) for x in members}
    return len(exs), flagged


def _own_heading(block: dict) -> str:
    hs = headings(block)
    return hs[-1].casefold() if hs else ""


def _distinctive_names(blocks: list[dict]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = defaultdict(set)
    for b in blocks:
        doc = _document(b.get("source", ""))
        names[doc].add(PurePosixPath(doc).stem.casefold())
        if hs := headings(b):
            names[doc].add((b.get("document") or hs[0]).casefold())
    owners = Counter(n for ns in names.values() for n in ns)
    return {doc: {n for n in ns if owners[n] == 1 and _WORD.search(n)} for doc, ns in names.items()}


def _names_one(question: str, names: set[str]) -> bool:
    q = question.casefold()
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", q) for n in names)


def unnamed_subject(exs: list[_Ex], blocks: list[dict], rules: Rules) -> tuple[int, dict[int, float]]:
    docs_of: dict[str, set[str]] = defaultdict(set)
    for b in blocks:
        if heading := _own_heading(b):
            docs_of[heading].add(_document(b.get("source", "")))
    names = _distinctive_names(blocks)
    applies, flagged = 0, {}
    for x in exs:
        if x.block is None or len(docs_of.get(_own_heading(x.block), ())) < 2:
            continue
        applies += 1
        if not _names_one(x.question, names.get(x.document, set())):
            flagged[x.index] = len(docs_of[_own_heading(x.block)])
    return applies, flagged


def toc_share(block: dict, document_headings: set[str], own: str = "") -> float:
    """How much of a block reads as a table of contents: the share of its lines (items, rows) that are an entry
    ending on a page number or one of its document's own headings; text run together (a PDF page's) counts entries
    by their dot leaders, 1 per 8 words being all of it."""
    if block.get("kind") in ("table", "row"):  # a row of values ends on a number as a ToC entry does
        return 0.0
    text = block.get("text", "")
    lines = [i for i in block.get("items") or [] if isinstance(i, str)] or [
        ln for ln in text.splitlines() if ln.strip()
    ]
    entries = sum(_toc_entry(ln, document_headings, own) for ln in lines)
    by_lines = entries / len(lines) if len(lines) >= 3 else 0.0
    leaders = len(_LEADERS.findall(text))
    by_leaders = min(1.0, 8 * leaders / max(1, len(text.split()))) if leaders >= 3 else 0.0
    return max(by_lines, by_leaders)


def _toc_entry(line: str, document_headings: set[str], own: str) -> bool:
    if _PAGE_AT_END.search(line) or (len(line.split()) <= 8 and _SHORT_PAGE_AT_END.match(line)):
        return True
    title = _norm(re.sub(r"^[-*\d.\s]+", "", line))
    return title != own and title in document_headings


def toc_subject(exs: list[_Ex], blocks: list[dict], rules: Rules) -> tuple[int, dict[int, float]]:
    doc_headings: dict[str, set[str]] = defaultdict(set)
    for b in blocks:
        doc_headings[_document(b.get("source", ""))] |= {h.casefold() for h in headings(b)}
    share: dict[str, float] = {}
    toc_titled: dict[tuple[str, str], bool] = {}  # (document, heading): every block it titles is a ToC
    for b in blocks:
        doc = _document(b.get("source", ""))
        share[b.get("id")] = toc_share(b, doc_headings[doc], _own_heading(b))
        key = (doc, _own_heading(b))
        toc_titled[key] = toc_titled.get(key, True) and share[b.get("id")] >= 0.6
    applies, flagged = 0, {}
    for x in exs:
        if x.block is None:
            continue
        applies += 1
        own = share.get(x.block.get("id"), 0.0)
        above = any(toc_titled.get((x.document, h.casefold())) for h in headings(x.block)[:-1])
        if own >= 0.6 or above:
            flagged[x.index] = own
    return applies, flagged


def number_subject(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    with_block = [x for x in exs if x.block is not None]
    return len(with_block), {x.index: 1 for x in with_block if _NUMBER_HEADING.match(_own_heading(x.block) or "x")}


def dangling_lead_in(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    flagged = {x.index: len(x.answer) for x in exs if x.answer.rstrip()[-1:] in tuple(rules.lead_in_marks)}
    return len(exs), flagged


def bare_code(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    applies, flagged = 0, {}
    for x in exs:
        code = (x.block or {}).get("code") if (x.block or {}).get("kind") == "code" else None
        if not (_FENCE.search(x.answer) or (code and code.strip() in x.answer)):
            continue
        applies += 1
        rest = _FENCE.sub(" ", x.answer)
        if code and code.strip():
            rest = rest.replace(code.strip(), " ")
        if len(_WORD.findall(rest)) < rules.min_explanation_words:
            flagged[x.index] = len(x.answer)
    return applies, flagged


def pasted_lead_in(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    applies, flagged = 0, {}
    cache: dict[int, list[str]] = {}  # a block's sentences, once for all its examples
    for x in exs:
        if x.block is None:
            continue
        if (key := id(x.block)) not in cache:
            found = [x.block.get("lead") or ""]
            if x.block.get("kind") != "code":
                found += sentences(x.block.get("text", ""))
            cache[key] = [
                c
                for c in (_norm(c) for c in found)
                if len(c.split()) >= rules.min_pasted_words and not _starts_instruction(c, rules)
            ]
        candidates = cache[key]
        if not candidates:
            continue
        applies += 1
        question = " ".join(x.question.split()).casefold()
        pasted = [c for c in candidates if c in question]
        if pasted:
            flagged[x.index] = max(len(c) for c in pasted)
    return applies, flagged


def _starts_instruction(text: str, rules: Rules) -> bool:
    words = _words(text)
    return bool(words) and any(words[0] in ws for ws in rules.instruction_words.values())


def is_sentence(text: str, rules: Rules) -> bool:
    text = text.strip().rstrip(_CLOSERS).rstrip()
    # A literal keeps its own case: "`auto` colours …" and "/etc/shadow is readable …" are sentences; only a first
    # word of letters alone ("do not ignore …") says the sentence's start is missing.
    first_word = text.split()[0] if text.split() else ""
    first = first_word[:1] if first_word.replace("-", "").replace("'", "").isalpha() else ""
    return bool(text) and not first.islower() and text[-1] in rules.sentence_ends


def fragment_answer(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    mine = [x for x in exs if x.block is not None and x.block.get("kind") in rules.fragment_kinds]
    return len(mine), {x.index: 1 for x in mine if not is_sentence(x.answer, rules)}


def is_instruction(item: str, rules: Rules) -> bool:
    words = _words(item)
    if len(words) < 3 or item.rstrip()[-1:] in tuple(rules.lead_in_marks) or _PAGE_AT_END.search(item):
        return False
    if not rules.instruction_words:
        return True
    return _starts_instruction(item, rules)


def non_procedure_steps(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    applies, flagged = 0, {}
    for x in exs:
        items = _NUMBERED.findall(x.answer)
        if x.block is None or x.block.get("kind") not in rules.steps_kinds or not items:
            continue
        applies += 1
        share = sum(is_instruction(i, rules) for i in items) / len(items)
        if len(items) < 2 or share < rules.min_instruction_share:
            flagged[x.index] = 1 - share
    return applies, flagged


def boilerplate_repeat(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    long = [x for x in exs if len(x.answer.split()) >= rules.min_boilerplate_words]
    docs: dict[str, set[str]] = defaultdict(set)
    for x in long:
        docs[_norm(x.answer)].add(x.document)
    return len(long), {x.index: len(docs[_norm(x.answer)]) for x in long if len(docs[_norm(x.answer)]) > 1}


def _votes(text: str, language_of: dict[str, str]) -> Counter:
    return Counter(language_of[w] for w in _words(text) if w in language_of)


def _language(votes: Counter) -> str | None:
    top = votes.most_common(2)
    if not top or top[0][1] < 2 or (len(top) > 1 and top[1][1] == top[0][1]):
        return None
    return top[0][0]


def mixed_language(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    if len(rules.stopwords) < 2:
        return 0, {}
    counts = Counter(w for ws in rules.stopwords.values() for w in ws)
    language_of = {w: lang for lang, ws in rules.stopwords.items() for w in ws if counts[w] == 1}
    flagged = {}
    for x in exs:
        q = _votes(x.question, language_of)
        lq, la = _language(q), _language(_votes(x.answer, language_of))
        in_question = sum(n >= 2 for n in q.values()) >= 2
        if in_question or (lq and la and lq != la):
            flagged[x.index] = sum(q.values())
    return len(exs), flagged


def too_long(exs: list[_Ex], rules: Rules) -> tuple[int, dict[int, float]]:
    if rules.max_tokens is None:
        return 0, {}
    count = rules.count_tokens or (lambda s: math.ceil(len(s) / rules.chars_per_token))
    sizes = {x.index: count(x.text) for x in exs}
    return len(exs), {i: n for i, n in sizes.items() if n > rules.max_tokens}


def _shown(text: str) -> str:
    return text if len(text) <= SHOW_CHARS else text[: SHOW_CHARS - 1] + "…"


def measure(examples: list[dict], blocks: list[dict], rules: Rules | Mapping | None = None) -> dict:
    """Flat counts of every problem in PROBLEMS over `examples` (built from `blocks`), each with `<problem>_of`,
    `flagged` (examples with at least one problem) and `worst`: {problem: [{id, question, answer}, …]}."""
    rules = rules if isinstance(rules, Rules) else Rules.from_mapping(rules)
    exs = _prepare(examples, blocks)
    results = {
        "ambiguous": ambiguous(exs, rules),
        "unnamed_subject": unnamed_subject(exs, blocks, rules),
        "toc_subject": toc_subject(exs, blocks, rules),
        "number_subject": number_subject(exs, rules),
        "dangling_lead_in": dangling_lead_in(exs, rules),
        "bare_code": bare_code(exs, rules),
        "pasted_lead_in": pasted_lead_in(exs, rules),
        "fragment_answer": fragment_answer(exs, rules),
        "non_procedure_steps": non_procedure_steps(exs, rules),
        "boilerplate_repeat": boilerplate_repeat(exs, rules),
        "mixed_language": mixed_language(exs, rules),
        "too_long": too_long(exs, rules),
    }
    out: dict = {"examples": len(exs)}
    worst: dict[str, list[dict]] = {}
    anything: set[int] = set()
    for name in PROBLEMS:
        applies, flagged = results[name]
        out[name], out[f"{name}_of"] = len(flagged), applies
        anything |= flagged.keys()
        ranked = sorted(flagged, key=lambda i: (-flagged[i], i))[: rules.worst]
        worst[name] = [{"id": exs[i].id, "question": _shown(exs[i].question), "answer": _shown(exs[i].answer)}
                       for i in ranked]  # fmt: skip
    out["flagged"] = len(anything)
    out["worst"] = worst
    return out
