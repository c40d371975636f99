"""HTML (and Markdown rendered to HTML) as a flat list of structural events, for the extract stage.

A forgiving reader on the standard library's html.parser: real-world HTML leaves tags open, so the tree closes
them the way browsers do (a new <li> closes the previous one, a new row closes the open cell…). Inline markup is
rendered the way the block contract asks (finetune/schema.py): code in backticks, links as their text, <br> a line
break; a <pre> keeps its text verbatim.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from finetune.documents.tables import is_header, is_note, shape

# Elements open at once. The reader walks the tree recursively, up to 3 frames a level (inline markup in a list item),
# so without a limit 10,000 nested <div>s end in a RecursionError; 200 levels take ~600 of Python's 1,000 frames,
# and a real page nests some 30.
MAX_DEPTH = 200
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_SKIP = {"head", "title", "script", "style", "template", "noscript", "svg"}
_BLOCK = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote", "figure",
          "figcaption", "dl", "dt", "dd", "body", "html", "form", "address", "li", "pre", "details", "summary"}  # fmt: skip
# An opened tag closes an unclosed one of these (<li>a<li>b), looking up the open tags until a _SCOPE tag.
_CLOSES = {"li": {"li"}, "td": {"td", "th"}, "th": {"td", "th"}, "tr": {"tr", "td", "th"}, "p": {"p"},
           "dt": {"dt", "dd"}, "dd": {"dt", "dd"}}  # fmt: skip
_SCOPE = {"ul", "ol", "table", "tr", "td", "th", "li", "div", "blockquote", "body", "dl", "details"}
_TERM_TAGS = {"code", "strong", "b", "em", "i", "kbd", "var", "dfn"}
# Heading anchors (`## Add {#add-symlink}`, `{.class #id}`) and permalink marks are markup, not words of the title.
_ANCHOR = re.compile(r"\s*(\{[#.][^{}]*\}|[¶§#])\s*$")
# An option as a reference writes it: `-f`, `--force`, `--out=DIR`, `--out <dir>`, `-f, --force`, `--[no-]color`.
_FLAG = r"--?[A-Za-z?][\w\[\]-]*(?:[ =](?:<[^>]+>|\[[^\]]+\]|[A-Z][A-Z0-9_]+))?"
FLAGS = re.compile(rf"{_FLAG}(?:\s*[,/|]\s*{_FLAG})*")
# What joins a term to its definition: `term: text`, `term — text`, `term - text`.
_MARK = re.compile(r"\d{1,2}|[*†‡]{1,3}|\(\d{1,2}\)")  # a footnote reference in a table cell
_JOINER = re.compile(r"^\s*(?::|[—–]|\s-\s)\s*")


class TooDeep(ValueError):
    """HTML nested deeper than MAX_DEPTH; `line` is where the element that went over starts."""

    def __init__(self, line: int):
        self.line = line
        super().__init__(f"elements nested deeper than {MAX_DEPTH} levels: not a document a person wrote")


class _Tree(HTMLParser):
    """A forgiving HTML parser building a (tag, attrs, children) tree; text stays str."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = ("", {}, [])
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        closes = _CLOSES.get(tag, {"p"} if tag in _BLOCK | {"ul", "ol", "table"} or re.fullmatch(r"h\d", tag) else ())
        cut = None
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][0] in closes:
                cut = i
            elif self.stack[i][0] in _SCOPE:
                break
        del self.stack[cut or len(self.stack) :]
        node = (tag, dict(attrs), [])
        self.stack[-1][2].append(node)
        if tag not in _VOID:
            if len(self.stack) > MAX_DEPTH:  # the root is no element
                raise TooDeep(self.getpos()[0])
            self.stack.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.stack[-1][2].append(data)


def _raw(node) -> str:
    """The text of a node exactly as written (for <pre> and inline code)."""
    if isinstance(node, str):
        return node
    return "\n" if node[0] == "br" else "".join(_raw(c) for c in node[2])


def _inline(node) -> str:
    """A node as one run of text: white space collapsed (source line breaks are only wrapping), code in backticks."""
    if isinstance(node, str):
        return re.sub(r"\s+", " ", node)
    tag, _, children = node
    if tag in _SKIP:
        return ""
    if tag == "br":
        return "\n"
    if tag == "code":
        return f"`{' '.join(_raw(node).split())}`"
    if tag == "pre":
        return f" {fence(node)} "
    inner = "".join(_inline(c) for c in children)
    return f" {inner} " if tag in _BLOCK | {"ul", "ol", "table", "tr", "td", "th"} else inner


def tidy(text: str) -> str:
    """Spaces collapsed inside each line, lines trimmed, blank lines gone."""
    return "\n".join(line for line in (" ".join(ln.split()) for ln in text.strip().splitlines()) if line)


def code_of(pre) -> tuple[str, str]:
    """(code, language) of a <pre>: the text verbatim, the language from a `language-x` class."""
    inner = next((c for c in pre[2] if isinstance(c, tuple) and c[0] == "code"), pre)
    classes = f"{inner[1].get('class') or ''} {pre[1].get('class') or ''}".split()
    lang = next((c.split("-", 1)[1] for c in classes if c.startswith(("language-", "lang-"))), "")
    return _raw(inner).strip("\n").rstrip(), lang


def fence(pre) -> str:
    code, lang = code_of(pre)
    return f"\n```{lang}\n{code}\n```\n"


def render(node) -> str:
    """A block node (a list item, a quote) as Markdown-ish text: paragraphs and nested lists on their own lines,
    fenced code verbatim."""
    parts, run = [], []

    def flush():
        if text := tidy("".join(run)):
            parts.append(text)
        run.clear()

    for c in node[2]:
        tag = c[0] if isinstance(c, tuple) else ""
        if tag in ("ul", "ol"):
            flush()
            items = [render(li) for li in _find(c, {"li"})]
            marks = [f"{n}. " if tag == "ol" else "- " for n in range(1, len(items) + 1)]
            parts.append("\n".join(m + i.replace("\n", "\n" + " " * len(m)) for m, i in zip(marks, items)))
        elif tag == "pre":
            flush()
            parts.append(fence(c).strip("\n"))
        elif tag in _BLOCK:
            flush()
            if text := render(c):
                parts.append(text)
        else:
            run.append(_inline(c))
    flush()
    return "\n".join(parts)


def _find(node, tags: set):
    """Descendants with one of `tags`, not looking inside them or inside nested tables."""
    for c in node[2]:
        if isinstance(c, tuple) and c[0] in tags:
            yield c
        elif isinstance(c, tuple) and c[0] != "table":
            yield from _find(c, tags)


def term_of(node, plain: bool = False) -> tuple[str, str] | None:
    """(term, definition) when a paragraph or list item reads as a glossary or option entry: a term in bold, italics
    or code (`**Term**: text`, `` `--force` `` text), an option written plainly (`-f, --force  text`), or a Markdown
    Extra definition (`term` then `: definition` on the next line); with `plain`, for paragraphs, also `Term: text`
    and `Term — text` with a term of up to four words. A bullet `Terminal X5: 230 V` is a note of its section, not a
    term, unless its author marked the term up."""
    kids = [c for c in node[2] if not (isinstance(c, str) and not c.strip())]
    if len(kids) == 1 and isinstance(kids[0], tuple) and kids[0][0] == "p":
        return term_of(kids[0], plain)  # a loose list wraps its items in <p>
    raw = _raw(node).strip()
    if m := re.fullmatch(r"([^\n:]{1,80})\n:\s+(.+)", raw, re.DOTALL):
        return " ".join(m[1].split()), " ".join(m[2].split())
    lead = 0  # how many children form the term: marked-up runs joined by ", " or " / "
    while lead < len(kids):
        c = kids[lead]
        marked = isinstance(c, tuple) and c[0] in _TERM_TAGS
        joiner = lead and isinstance(c, str) and re.fullmatch(r"\s*[,/|]\s*", c) and lead + 1 < len(kids)
        if not (marked or joiner):
            break
        lead += 1
    if lead:
        # Two marked-up runs side by side are two words ("<code>5</code><strong>Fatal Error</strong>")
        term = "".join(
            (" " if n and isinstance(kids[n - 1], tuple) and isinstance(c, tuple) else "")
            + (_raw(c) if isinstance(c, tuple) else c)
            for n, c in enumerate(kids[:lead])
        )
        rest = "".join(_inline(c) for c in kids[lead:])
        term, joined = (term[:-1], True) if term.rstrip().endswith(":") else (term, False)
        if not joined and (m := _JOINER.match(rest)) and m.group().strip():
            rest, joined = rest[m.end() :], True
        term, rest = " ".join(term.split()).rstrip(":"), tidy(rest)
        if term and rest and (joined or FLAGS.fullmatch(term)):
            return term, rest
        return None
    text = " ".join(raw.split())
    if (m := FLAGS.match(text)) and (m2 := re.match(r"(?:\s*(?::|[—–])\s*|\s+)(\S.*)", text[m.end() :])):
        return m.group(), m2[1]
    if plain and (m := re.fullmatch(r"([^\s:.!?—–][^:.!?—–]{0,40}?)\s*(?::|\s[—–])\s+(\S.*)", text)):
        return (m[1], m[2]) if len(m[1].split()) <= 4 else None
    return None


def _span(cell, name: str) -> int:
    try:
        return max(1, min(int(cell[1].get(name) or 1), 100))  # a span over 100 is a typo, not a layout
    except ValueError:
        return 1


def _unmarked(cell):
    """A cell without a footnote reference after its value: "3.6<sup>2</sup>" (but "m<sup>2</sup>" stays)."""
    kids = list(cell[2])
    while kids and isinstance(kids[-1], str) and not kids[-1].strip():
        kids.pop()
    last = kids[-1] if kids else None
    before = "".join(_raw(c) for c in kids[:-1]).rstrip()
    if isinstance(last, tuple) and last[0] == "sup" and _MARK.fullmatch(_raw(last).strip()) and before[-1:].isdigit():
        return (cell[0], cell[1], kids[:-1])
    return cell


def _linked(cell) -> bool:
    """A cell whose words are all inside links, or that holds a picture: an entry of a grid of people, badges or
    pages (a README's contributors), not a value."""
    if any(True for _ in _find(cell, {"img"})):
        return True
    outside = "".join(_inline(c) for c in cell[2] if not (isinstance(c, tuple) and c[0] == "a"))
    return not re.sub(r"[\W_]+", "", outside) and any(True for _ in _find(cell, {"a"}))


# A table with at least this share of its filled cells linked (_linked) is a grid of links: nothing to ask about.
LINK_GRID_SHARE = 0.6


def table_of(node) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a <table>: cells spanning columns or rows repeated in each (a group name over its
    sub-columns, a parameter over its conditions), then read by tables.shape. The header is the leading rows that
    are all <th> (none when they are all empty), or the first row of a table without any <th> when it reads as
    names, not values (tables.is_header). A grid of links or pictures (LINK_GRID_SHARE) is no table: ([], [])."""
    grid, th, below = [], [], {}  # below: column -> (text, rows left) of a cell spanning rows from above
    filled = linked = 0
    for tr in _find(node, {"tr"}):
        cells = list(_find(tr, {"td", "th"}))
        if not cells:
            continue
        row, queue = [], list(cells)
        while queue or row and len(row) in below:
            if len(row) in below:
                text, left = below.pop(len(row))
                if left > 1:
                    below[len(row)] = (text, left - 1)
                row.append(text)
                continue
            cell = queue.pop(0)
            text = tidy(_inline(_unmarked(cell)))
            if text or any(True for _ in _find(cell, {"img"})):
                filled, linked = filled + 1, linked + _linked(cell)
            for _ in range(_span(cell, "colspan")):
                if _span(cell, "rowspan") > 1:
                    below[len(row)] = (text, _span(cell, "rowspan") - 1)
                row.append(text)
        grid.append(row)
        th.append(all(cell[0] == "th" for cell in cells))
    if filled and linked >= LINK_GRID_SHARE * filled:
        return [], []
    lead = min(next((n for n, t in enumerate(th) if not t), len(th)), 2)
    if not lead and not any(th):
        lead = int(bool(grid) and is_header(grid[0]))
    if lead == 2 and is_note(grid[1]):
        lead = 1  # a <th> spanning the row under the header is a group label of the rows below, not column names
    if lead and not any(c for r in grid[:lead] for c in r):
        return shape([], grid[lead:])  # a Markdown table whose header cells are all empty has no header
    return shape(grid[:lead], grid[lead:])


# HTML's own link types for moving between the pages of a document: a block holding such a link is the page's
# navigation ("Next: Introduction, Previous: Top, Up: Top [Contents]" above every node of a Texinfo manual).
_NAVIGATION_RELS = {"next", "prev", "previous", "up", "contents", "index", "start", "first", "last"}


def is_navigation(node) -> bool:
    """A <nav>, an element with role="navigation", or a paragraph holding a next/prev/up link (not a <div>: one
    may hold the whole page as well as its links)."""
    if not isinstance(node, tuple):
        return False
    tag, attrs, _ = node
    if tag == "nav" or (attrs.get("role") or "") == "navigation":
        return True
    if tag != "p":
        return False
    return any(set((a[1].get("rel") or "").lower().split()) & _NAVIGATION_RELS for a in _find(node, {"a"}))


def html_events(node, events: list | None = None) -> list[tuple]:
    """Events in document order: ("h", level, text), ("para", text, term), ("ul"|"ol", items, terms),
    ("table", header, rows), ("code", code, language), ("dl", [(term, definition)]), ("details", summary) and
    ("/details",) around the content of a <details>. `term` is term_of's answer for that paragraph or item."""
    events = [] if events is None else events
    para: list[str] = []
    for c in [*node[2], None]:  # None: the end, flushing the last paragraph
        tag = c[0] if isinstance(c, tuple) else ""
        if tag in _SKIP or is_navigation(c):
            continue
        heading = re.fullmatch(r"h([1-6])", tag)
        if c is not None and not (heading or tag in _BLOCK or tag in ("table", "ol", "ul")):
            para.append(_inline(c))  # text and inline tags join the running paragraph
            continue
        if text := tidy("".join(para)):
            events.append(("para", text, None))
        para = []
        if c is None:
            break
        if heading:
            events.append(("h", int(heading[1]), _ANCHOR.sub("", " ".join(_inline(c).split()))))
        elif tag == "table":
            events.append(("table", *table_of(c)))
        elif tag in ("ol", "ul"):
            items = list(_find(c, {"li"}))
            events.append((tag, [render(li) for li in items], [term_of(li) for li in items]))
        elif tag == "pre":
            events.append(("code", *code_of(c)))
        elif tag == "dl":
            pairs, term = [], None
            for d in _find(c, {"dt", "dd"}):
                if d[0] == "dt":
                    term = _ANCHOR.sub("", tidy(_inline(d)))  # a term's permalink mark too, as a heading's
                elif term and (definition := render(d)):
                    pairs.append((term, definition))
            events.append(("dl", pairs))
        elif tag == "details":
            summary = next((s for s in c[2] if isinstance(s, tuple) and s[0] == "summary"), None)
            events.append(("details", tidy(_inline(summary)) if summary else "Details"))
            html_events((tag, {}, [s for s in c[2] if s is not summary]), events)
            events.append(("/details",))
        elif tag == "p":
            if text := render(c):
                events.append(("para", text, term_of(c, plain=True)))
        else:
            html_events(c, events)  # a block of its own, e.g. <div> or <blockquote>
    return events


def _title(node) -> str:
    """The text of the first <title> (the document's own name in its metadata), "" when it has none."""
    for c in node[2]:
        if isinstance(c, tuple):
            if c[0] == "title":
                return " ".join(_raw(c).split())
            if found := _title(c):
                return found
    return ""


def read_html(text: str) -> tuple[str, list[tuple]]:
    """(its <title>, its events)."""
    tree = _Tree()
    tree.feed(text)
    tree.close()
    return _title(tree.root), html_events(tree.root)


def parse_html(text: str) -> list[tuple]:
    return read_html(text)[1]
