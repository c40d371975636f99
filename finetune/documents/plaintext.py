"""The structure of plain text, for extract: the headings, option lists, lists and code that a reStructuredText
README or a man page rendered to text (`man -P cat`) marks by layout alone, as the events of
finetune/documents/markup.html_events, so a .txt file is cut into sections like Markdown.
"""

from __future__ import annotations

import re
import textwrap

# A plain-text file marks its structure by layout alone: reStructuredText and setext underline a heading with one
# repeated punctuation mark (its overline too, in reST), and a man page rendered to text (`man -P cat`) sets its
# section names in capitals at the margin, subsection names at 3 columns, its text at 7, and each option as a
# "tagged paragraph": the option at the text's column, its description indented under it.
_ADORNMENT = re.compile(r"""^([=\-~^"'`#*+_.:<>])\1{2,}\s*$""")
_LIST_ITEM = re.compile(r"^([-*+•]|\d{1,2}[.)])\s+(\S.*)$")
_DIRECTIVE = re.compile(r"^\.\.\s+(?:([\w:-]+)::|_|\[|\|)")  # `.. code-block::`, a target `.. _x:`, a comment
_SENTENCE_END = re.compile(r"[.!?,;:]$")  # a heading ends on none of these
_MAX_HEADING_WORDS = 8
_MAX_TERM_WORDS = 4  # a tagged paragraph's term: "ESC-7", "/etc/passwd", "generic name (or link)"


def _inline_rst(text: str) -> str:
    """reStructuredText's inline markup as the Markdown-ish text of a block: `text <url>`_ and `name`_ -> their
    text, ``code`` -> `code`, a reference's trailing "_" (node-celery_) and |substitutions| gone."""
    text = re.sub(r"``([^`]+)``", "\0\\1\0", text)  # literals first, kept from the rules below
    text = re.sub(r"`([^`<]+?)\s*<[^>]+>`__?", r"\1", text)
    text = re.sub(r"`([^`]+)`__?", r"\1", text)
    text = re.sub(r"(?<!\w)([A-Za-z][\w-]*?)__?(?=[\s.,;:)]|$)", r"\1", text)
    text = re.sub(r"(?:^|\s)\|[^|\s][^|]*\|_?(?=\s|$)", "", text).replace("\0", "`")
    return text.strip()


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _capitals(line: str) -> bool:
    """A line of capitals only ("OPTIONS", "EXIT STATUS", "SIEHE AUCH"): at least 3 letters, none lower-case."""
    letters = [c for c in line if c.isalpha()]
    words = line.split()
    return (
        len(letters) >= 3
        and not any(c.islower() for c in letters)
        and len(words) <= _MAX_HEADING_WORDS
        and not _SENTENCE_END.search(line.strip())
    )


def _running_line(line: str) -> bool:
    """A page's running header or footer: text set in three columns ("COL(1)   User Commands   COL(1)")."""
    return len(re.findall(r"\S\s{3,}\S", line.strip())) >= 2


def _paragraphs(lines: list[str]) -> list[list[str]]:
    groups, run = [], []
    for line in [*lines, ""]:
        if line.strip():
            run.append(line.rstrip())
        elif run:
            groups.append(run)
            run = []
    return groups


def _heading(group: list[str], styles: list[tuple]) -> tuple[int, str] | None:
    """(level, text) when a paragraph is an underlined heading; `styles` collects the adornments in the order
    first seen, which is what their levels are in reStructuredText."""
    over = len(group) == 3 and _ADORNMENT.match(group[0]) and _ADORNMENT.match(group[2])
    if over or (len(group) == 2 and _ADORNMENT.match(group[1]) and not _ADORNMENT.match(group[0])):
        text = group[1] if over else group[0]
        if len(group[-1].strip()) >= 0.7 * len(text.strip()) and len(text.split()) <= 2 * _MAX_HEADING_WORDS:
            style = (group[-1].strip()[0], bool(over))
            if style not in styles:
                styles.append(style)
            return styles.index(style) + 1, text.strip()
    return None


def text_events(text: str) -> list[tuple]:
    """The events of finetune/documents/markup.html_events for plain text, when its layout marks headings: an
    underlined line, or a line of capitals at the margin (a man page's NAME, OPTIONS; a text's own section names),
    above text that is indented or not. Options and tagged paragraphs become glossary entries, lists items, text
    after a lead-in ("::", ":") that is indented deeper fenced code. [] when the text has no heading: then it is
    read paragraph by paragraph (readers.txt_blocks)."""
    from finetune.documents.markup import FLAGS

    # groff hyphenates a word at a line's end with U+2010 ("success‐" / "fully"): one word again
    lines = re.sub(r"(?<=\w)\u2010\n[ \t]*(?=\w)", "", text).splitlines()
    filled = [n for n, ln in enumerate(lines) if ln.strip()]
    for n in filled[:1] + filled[-1:]:  # a rendered man page's running header and footer
        if _running_line(lines[n]):
            lines[n] = ""
    groups = _paragraphs(lines)
    # The column the text is set at: where most lines are, but for the options' (a man page's descriptions, indented
    # under each option, outnumber its other lines).
    indents = [_indent_of(ln) for g in groups if not FLAGS.match(g[0].strip()) for ln in g]
    body = max(set(indents), key=indents.count) if indents else 0
    events: list[tuple] = []
    styles: list[tuple] = []
    pairs: list[tuple[str, str]] = []
    items: list[str] = []
    lead_in, code_next, ordered = "", False, False

    def flush() -> None:
        if pairs:
            events.append(("dl", list(pairs)))
            pairs.clear()
        if items:
            events.append(("ol" if ordered else "ul", list(items), [None] * len(items)))
            items.clear()

    queue = list(reversed(groups))
    while queue:
        g = queue.pop()
        first, indent = g[0].strip(), _indent_of(g[0])
        h = _heading(g, styles)
        # A heading at the margin (or a subsection's column) left of the text, its text on the next lines or after
        # a blank one (a man page's "NAME" over "       col - filter …"); capitals alone on their line where the
        # text is not indented.
        short = len(first.split()) <= _MAX_HEADING_WORDS and not _SENTENCE_END.search(first)
        plain = short and not FLAGS.match(first) and not _LIST_ITEM.match(first) and not _DIRECTIVE.match(first)
        alone = len(g) == 1 or _indent_of(g[1]) > indent
        if not h and plain and alone and (indent < body or (body == 0 and len(g) == 1 and _capitals(first))):
            h = (2 if indent == 0 else 3, first)  # under the document's title (its file name): level 1
        if h:
            flush()
            events.append(("h", h[0], _inline_rst(h[1])))
            lead_in = ""
            if not _heading(g, []) and len(g) > 1:
                queue.append(g[1:])
            continue
        if (m := _DIRECTIVE.match(first)) and indent <= body:
            code_next = bool(m[1]) and "code" in m[1]
            continue  # a directive's name and options, a link target, a comment: markup, not text
        deeper = indent > _indent_of(lead_in) if lead_in else False
        if (code_next or (lead_in.rstrip().endswith(":") and deeper)) and indent > 0:
            flush()
            # The paragraphs after it that are indented as deep or deeper are the same code, blank lines and all
            block = list(g)
            while queue and min(_indent_of(ln) for ln in queue[-1]) >= indent:
                block += ["", *queue.pop()]
            events.append(("code", textwrap.dedent("\n".join(block)).strip("\n"), ""))
            code_next, lead_in = False, ""
            continue
        code_next = False
        # A tagged paragraph: its term's lines (an option's spellings, one a line: "-V" over "--version") at its
        # column, its description indented deeper under them.
        k = next((j for j, ln in enumerate(g) if _indent_of(ln) > indent), len(g))
        if 1 < k < len(g) and all(FLAGS.match(ln.strip()) and len(ln.split()) <= 3 for ln in g[:k]):
            first, g = (
                ", ".join(ln.strip() for ln in g[:k]),
                [g[0][:indent] + ", ".join(ln.strip() for ln in g[:k]), *g[k:]],
            )
        tagged = len(g) > 1 and _indent_of(g[1]) > indent and len(first.split()) <= _MAX_HEADING_WORDS
        option = FLAGS.match(first)
        if option and (tagged or re.match(r"\s{2,}\S", first[option.end() :])):
            # "-l, --lines number" over its description (the whole line is the term: its argument too), or
            # "-h  Show the help." on one line
            term, rest = (first, g[1:]) if tagged else (option.group(), [first[option.end() :], *g[1:]])
            if definition := " ".join(" ".join(rest).split()):
                if items:
                    flush()
                pairs.append((term, _inline_rst(definition)))
                continue
        # A term is a few words; a first line set in columns ("cp  CP  CPU usage in …") is a row of a table.
        term_like = len(first.split()) <= _MAX_TERM_WORDS and not re.search(r"\S\s{2,}\S", first)
        if tagged and term_like and not _SENTENCE_END.search(first) and not _LIST_ITEM.match(first):
            if items:
                flush()
            pairs.append((_inline_rst(first), _inline_rst(" ".join(" ".join(g[1:]).split()))))
            continue
        if m := _LIST_ITEM.match(first):
            if pairs:
                flush()
            ordered = items == [] and m[1][0].isdigit() or (bool(items) and ordered)
            for ln in g:  # items on consecutive lines ("5) Tag it." / "6) Push it."), each with its wrapped lines
                if (m := _LIST_ITEM.match(ln.strip())) and _indent_of(ln) <= indent:
                    items.append(m[2])
                else:
                    items[-1] += " " + ln.strip()
            items[-len(g) :] = [_inline_rst(i) for i in items[-len(g) :]]
            continue
        flush()
        # A reST line block ("| text") is its text; "::" alone introduces the literal block that follows it.
        paragraph = _inline_rst(" ".join(" ".join(re.sub(r"^\s*\|\s", "", ln) for ln in g).split()))
        if paragraph == "::":
            lead_in = g[0]
            continue
        if not paragraph.strip("| "):
            continue  # a row of substitutions (|build-status| |coverage|): badges, pictures in the rendered page
        if paragraph.endswith("::"):
            paragraph = paragraph[:-1]  # reST's "::" is a colon before a literal block
        events.append(("para", paragraph, None))
        lead_in = g[0][:indent] + paragraph
    flush()
    return events if any(ev[0] == "h" for ev in events) else []
