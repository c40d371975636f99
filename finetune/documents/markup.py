"""HTML (and Markdown rendered to HTML) as a flat list of structural events, for the extract stage.

A forgiving reader on the standard library's html.parser: real-world HTML leaves tags open, so the tree closes
them the way browsers do (a new <li> closes the previous one, a new row closes the open cell…).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_SKIP = {"head", "title", "script", "style", "template", "noscript", "svg"}
_BLOCK = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote", "figure",
          "figcaption", "dl", "dt", "dd", "body", "html", "form", "address", "li", "pre"}  # fmt: skip
# An opened tag closes an unclosed one of these (<li>a<li>b), looking up the open tags until a _SCOPE tag.
_CLOSES = {"li": {"li"}, "td": {"td", "th"}, "th": {"td", "th"}, "tr": {"tr", "td", "th"}, "p": {"p"}}
_SCOPE = {"ul", "ol", "table", "tr", "td", "th", "li", "div", "blockquote", "body"}


class _Tree(HTMLParser):
    """A forgiving HTML parser building a (tag, children) tree; text stays str."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = ("", [])
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
        node = (tag, [])
        self.stack[-1][1].append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.stack[-1][1].append(data)


def _text(node, pre: bool = False) -> str:
    if isinstance(node, str):
        return node if pre else re.sub(r"\s+", " ", node)  # source line breaks are only wrapping, <br> is one
    tag, children = node
    inner = "" if tag in _SKIP else "\n" if tag == "br" else "".join(_text(c, pre or tag == "pre") for c in children)
    return f" {inner} " if tag in _BLOCK | {"ul", "ol"} else inner


def _find(node, tags: set):
    """Descendants with one of `tags`, not looking inside them or inside nested tables."""
    for c in node[1]:
        if isinstance(c, tuple) and c[0] in tags:
            yield c
        elif isinstance(c, tuple) and c[0] != "table":
            yield from _find(c, tags)


def html_events(node, events: list | None = None) -> list[tuple]:
    """("h", level, text), ("table", header, rows), ("ol"|"ul", items) and ("para", text) in document order."""
    events = [] if events is None else events
    para: list[str] = []
    for c in [*node[1], None]:  # None: the end, flushing the last paragraph
        tag = c[0] if isinstance(c, tuple) else ""
        if tag in _SKIP:
            continue
        heading = re.fullmatch(r"h([1-6])", tag)
        if c is not None and not (heading or tag in _BLOCK or tag in ("table", "ol", "ul")):
            para.append(_text(c))  # text and inline tags join the running paragraph
            continue
        if "".join(para).strip():
            events.append(("para", "".join(para)))
        para = []
        if c is None:
            break
        if heading:
            events.append(("h", int(heading[1]), _text(c)))
        elif tag == "table":
            rows = [cells for tr in _find(c, {"tr"}) if (cells := list(_find(tr, {"td", "th"})))]
            # The header is the first row if it is all <th>, or the first row of a table without any <th>.
            th = [all(cell[0] == "th" for cell in row) for row in rows]
            head = rows.pop(0) if rows and (th[0] or not any(th)) else []
            events.append(("table", [_text(x) for x in head], [[_text(x) for x in row] for row in rows]))
        elif tag in ("ol", "ul"):
            events.append((tag, [_text(li) for li in _find(c, {"li"})]))
        elif tag == "pre":
            events.append(("para", _text(c, pre=True)))
        else:
            html_events(c, events)  # a block of its own, e.g. <p> or <div>
    return events


def parse_html(text: str) -> list[tuple]:
    tree = _Tree()
    tree.feed(text)
    tree.close()
    return html_events(tree.root)
