"""Cutting a long text into parts that fit a budget, and naming each part by what it says.

extract cuts a long section at extract.max_chars (a character guess at the token budget); generate cuts again, with
the base model's tokenizer, whatever example is still over model.max_seq_len (finetune.generation.budget). Both
cut here, by the same rules: between paragraphs, lines, sentences, words; never inside a code fence unless the
fence alone is over budget, and then between its lines, each piece fenced again; never right after a lead-in.
"""

from __future__ import annotations

import re
from itertools import pairwise

LEAD_IN = ":："  # a paragraph ending on one leads in to what follows it (code, a list, a table)


def leads_in(prose: str | list) -> bool:
    return isinstance(prose, str) and prose.rstrip()[-1:] in tuple(LEAD_IN)


def _unfinished(prose: str) -> bool:
    """Prose a part may not end on: a lead-in, or a sentence cut at its comma ("… call, e.g.," before its code):
    the answer would stop on what it was about to show."""
    return leads_in(prose) or prose.rstrip()[-1:] in (",", "，")


# Where a long section may be cut, best first: between paragraphs, between lines (list items), between sentences,
# and as a last resort between words, so that no part is over budget unless one fenced code block alone is.
_CUTS = [re.compile(r"\n[ \t]*\n\s*"), re.compile(r"\n\s*"), re.compile(r"(?<=[.!?])[\"')\]]*\s+"), re.compile(r"\s+")]
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)


def cut_spans(text: str, max_chars: int) -> list[tuple[int, int]]:
    """(start, end) of each part of `text` when it is cut to parts of at most max_chars, never inside a fence nor
    right after a lead-in (a part ending "… as follows:" would answer with nothing after its colon)."""
    # A fence is cut nowhere, and neither is the lead-in paragraph before it from it: a part of the lead alone would
    # stop on its colon, a part of the code alone would show code with nothing to say what it is.
    fences = []
    for m in FENCE.finditer(text):
        blank = text.rfind("\n\n", 0, max(0, m.start() - 2))  # the blank line before the paragraph before it
        lead_at = blank + 2 if blank >= 0 else 0
        fences.append((lead_at, m.end()) if _unfinished(text[lead_at : m.start()]) else m.span())

    def spans(lo: int, hi: int, level: int) -> list[tuple[int, int]]:
        if hi - lo <= max_chars:
            return [(lo, hi)]
        for lvl in range(level, len(_CUTS)):
            cuts = [
                m
                for m in _CUTS[lvl].finditer(text, lo, hi)
                if lo < m.start()
                and m.end() < hi
                and not any(a < m.end() and m.start() < b for a, b in fences)
                and not _unfinished(text[lo : m.start()])  # a part never ends on a lead-in: what it led to is next
            ]
            if not cuts:
                continue
            pieces = [
                (lo, cuts[0].start()),
                *((a.end(), b.start()) for a, b in pairwise(cuts)),
                (cuts[-1].end(), hi),
            ]
            packed = [pieces[0]]
            for start, end in pieces[1:]:  # greedy: as many whole pieces per part as fit
                if end - packed[-1][0] <= max_chars and packed[-1][1] - packed[-1][0] <= max_chars:
                    packed[-1] = (packed[-1][0], end)
                else:
                    packed.append((start, end))
            return [s for a, b in packed for s in spans(a, b, lvl + 1)]
        return [(lo, hi)]  # one fenced code block (with its lead): cut_fence cuts it further

    return spans(0, len(text), 0)


# A program may be cut only where a statement starts: a line at the code's own margin that neither closes nor
# continues the one before. Punctuation and a few keywords that exist in many languages, not any document's words.
_CLOSES = re.compile(r"^[)\]}>]|^(?:else|elif|except|finally|catch)\b|^\.\.\.")
_CONTINUED = ("\\", ",", "(", "[", "{", "=", "+", "&&", "||", "|")
# An interactive session (Python's REPL, IPython, a shell): a new command starts only at a prompt; the lines after
# one are its continuation or its output, which belong to it.
_PROMPT = re.compile(r"^(?:>>>|In \[\d+\]:|\$ )")


def _starts(lines: list[str]) -> list[int]:
    """Indexes of the lines a piece of this code may start at (0 always)."""
    margin = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    prompted = any(_PROMPT.match(ln.strip()) for ln in lines)
    out = [0]
    for i in range(1, len(lines)):
        line, before = lines[i], next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        if not line.strip() or len(line) - len(line.lstrip()) > margin:
            continue
        if prompted:
            ok = bool(_PROMPT.match(line.strip()))
        else:
            ok = not _CLOSES.match(line.strip()) and not before.rstrip().endswith(_CONTINUED)
        if ok:
            # A statement's own comment and the blank lines before it go with it: start at the first of them.
            j = i
            while j - 1 > out[-1] and (not lines[j - 1].strip() or _COMMENT.match(lines[j - 1])):
                j -= 1
            out.append(j)
    return sorted(set(out))


def cut_lines(code: str, max_chars: int) -> list[str]:
    """Code cut into pieces of at most max_chars where a statement starts (_starts): never mid-line, never inside a
    function, a JSON object or a command's output, so every piece is whole code as written. A statement longer than
    max_chars stays whole, and the piece holding it is over: generate leaves it out and counts it, rather than teach
    half a program."""
    lines = code.splitlines(keepends=True)
    starts = _starts(lines)
    chunks = ["".join(lines[a:b]) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    pieces, piece = [], ""
    for chunk in chunks:
        if piece and len(piece) + len(chunk) > max_chars:
            pieces.append(piece)
            piece = ""
        piece += chunk
    return [p.strip("\n") for p in [*pieces, piece] if p.strip()]


def cut_fence(text: str, max_chars: int) -> list[str]:
    """A part over max_chars that holds a fence (cut_spans keeps a fence and its lead-in whole): the prose before it
    cut as prose, its last paragraph (the lead) with the first piece of the code, the code cut between its lines
    and every piece fenced again with the fence's own opening line (its language) and closing marker, and what
    follows cut the same way."""
    m = FENCE.search(text)
    if m is None:
        return [text]
    fence = m.group(0)
    opening, _, rest = fence.lstrip(" \t").partition("\n")
    body, _, closing = rest.rpartition("\n")
    head, _, lead = text[: m.start()].rstrip().rpartition("\n\n")
    if not _unfinished(lead):  # no lead-in: the paragraph before is prose like the rest, the code stands alone
        head, lead = text[: m.start()], ""
    room = max(1, max_chars - len(opening) - len(closing.strip()) - 2 - len(lead))
    pieces = [f"{opening}\n{p}\n{closing.strip()}" for p in cut_lines(body, room)] or [fence]
    pieces[0] = f"{lead}\n\n{pieces[0]}" if lead else pieces[0]
    after = text[m.end() :].strip()
    return [*cut_text(head, max_chars), *pieces, *cut_text(after, max_chars)]


def cut_text(text: str, max_chars: int) -> list[str]:
    """`text` as parts of at most max_chars where it can be cut (cut_spans), a long fence cut between its lines."""
    out = []
    for a, b in cut_spans(text, max_chars):
        part = text[a:b].strip()
        out += cut_fence(part, max_chars) if len(part) > max_chars and FENCE.search(part) else [part]
    return [p for p in out if p.strip()]


# What names a part, tried in turn on its first paragraph: a bold or emphasised lead ("**Proxies** …"), then its
# first clause. Punctuation only, so it works in any language; the label is short, it is a question's "(…)" group.
_BOLD = re.compile(r"^(?:\*\*|__)(.+?)(?:\*\*|__)")
# A list item or paragraph that opens on a code span names it ("`remoteWindowSize` <number> The number of …"): an
# option, a property, a method. That term is what the part is about; its first clause would quote a sentence.
_TERM = re.compile(r"^`([^`\n]{1,60})`(?=[\s:,(<—–-]|$)")
_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|#+)\s+")
_COMMENT = re.compile(r"^\s*(?:#+|//+|--|;+|/\*+|<!--|%+|REM\b)\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.:;!?。：；！？](?:\s|$)")
_CLAUSE_END = re.compile(r"[.,;:!?。，；：！？](?:\s|$)|\s[-–—]\s|\(")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# Emphasis and code marks, but not the underscores inside a name (OPT_STRICT_INTEGER, control_codes).
_MARKUP = re.compile(r"[*`]+|(?<![^\W_])_+|_+(?![^\W_])")
_WORDS = re.compile(r"\w{2,}")
_ENDS = "<>\"'“”‘’«».,;:!?… "  # what a label neither starts nor ends on: it sits inside ("…") itself
LABEL_WORDS = 6  # a label longer than this is cut to it and ends "…": enough to tell parts apart, short to ask


def _paragraphs(lines: list[str]) -> list[str]:
    """Paragraphs as one line each (a man page wraps its sentences at 80 columns); a list item or fence ends one."""
    out, para = [], []
    for ln in [*lines, ""]:
        if not ln.strip() or (para and (_MARKER.match(ln) or ln.lstrip().startswith(("```", "~~~")))):
            if para:
                out.append(" ".join(para))
            para = [ln.strip()] if ln.strip() else []
            continue
        para.append(ln.strip())
    return out


def _continues(text: str) -> bool:
    """A paragraph that starts mid-sentence (the cut fell between wrapped lines): lower case or punctuation first."""
    return text[:1].islower() or bool(text[:1] and not text[:1].isalnum() and text[:1] not in "*_[`\"'“«")


def _opening(lines: list[str]) -> str:
    """The part's first paragraph; when it starts mid-sentence, from its next sentence, else the next paragraph."""
    paras = _paragraphs(lines)
    if not paras or not _continues(paras[0]):
        return paras[0] if paras else ""
    # The next sentence starts after an end mark with a capital or a digit ("usw. sein)" is no sentence start).
    for nxt in re.finditer(r"[.!?。！？]\s+(?=\S)", paras[0]):
        if paras[0][nxt.end()].isupper() or paras[0][nxt.end()].isdigit():
            return paras[0][nxt.end() :]
    return next((p for p in paras[1:] if not _continues(p)), paras[0])


def part_label(text: str) -> str:
    """What a part of a section is about, from its first paragraph: a bold lead or a code span it opens on, else its
    first clause (a code piece: its first comment, else line, of two words or more), at most LABEL_WORDS words."""
    lines = text.strip().splitlines()
    if not any(ln.strip() for ln in lines):
        return ""
    if lines[0].lstrip().startswith(("```", "~~~")):  # a piece of code
        # A comment says what code does better than any line of it ("} = require" named a piece before); one on
        # the piece's last line is about the code after it, in the next piece ("# Option 2: …"), unless it is the
        # piece's only line. Without one, its first line of two words or more: a part is never asked by its number
        # alone.
        code = [ln for ln in lines[1:] if not ln.lstrip().startswith(("```", "~~~"))]
        comments = [_COMMENT.sub("", ln).strip() for ln in code[:-1] or code if _COMMENT.match(ln)]
        said = [ln.strip() for ln in code if not _COMMENT.match(ln)]
        first = next(
            (ln for ln in [*comments, *said] if len(_WORDS.findall(ln)) >= 2), next((ln for ln in said if ln), "")
        )
    else:
        first = _opening([_MARKER.sub("", lines[0]), *lines[1:]])
    first = _LINK.sub(r"\1", first).strip()
    if bold := _BOLD.match(first) or _TERM.match(first):
        label = bold.group(1)
    else:
        end = _CLAUSE_END.search(first)
        label = first[: end.start()] if end and end.start() > 0 else first
        if len(label.split()) < 2:  # "Or, asynchronously:": one word says nothing, the sentence up to its end does
            end = _SENTENCE_END.search(first)
            label = first[: end.start()] if end and end.start() > 0 else first
    label = _MARKUP.sub("", label).strip(_ENDS)
    for open_, close in ("()", "[]", "{}"):  # a bracket the cut left without its partner ("cmd)")
        label = label.rstrip(close) if label.count(close) > label.count(open_) else label
        label = label.lstrip(open_) if label.count(open_) > label.count(close) else label
    words = label.strip(_ENDS).split()
    return " ".join(words[:LABEL_WORDS]) + ("…" if len(words) > LABEL_WORDS else "")


def part_labels(texts: list[str]) -> list[str]:
    """A label for each part of one section: "" for the first (a question about the section asks for its start),
    then part_label, made unique by the part's number where two parts would read alike ("Example 3")."""
    labels = [""]
    for n, t in enumerate(texts[1:], 2):
        label = part_label(t)
        if not label or label.casefold() in {x.casefold() for x in labels}:
            label = f"{label} {n}".strip()
        labels.append(label)
    return labels
