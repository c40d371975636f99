"""Sections no task reads: a project's own history (a changelog, its releases), its people and its sponsors, found
by the words of generate.skip_sections or by the shape of a changelog, never by words in this file."""

from __future__ import annotations

import re

from finetune.generation.builders import headings

# A heading that is a version number: a changelog's entry ("2.0.5 (2023-01-01)", "[1.2.0] - 2023", "v20.10.0"):
# the version alone, or followed by a date, a bracket, a dash or a colon. A numbered section ("6.1 Hash functions",
# "2.3. DESCRIPTION") is followed by its title.
_VERSION = re.compile(r"^\[?v?\d+\.\d+(?:\.\d+)*(?:[-+]?[A-Za-z]+\d*)?\]?\s*(?:$|[(\-–—:]|\d{4}-)")


# A section whose paragraphs start with a version this often is a changelog whatever its heading ("0.18.3
# (2023-10-29):" over the changes of a release, under a heading such as "breaking changes").
CHANGELOG_SHARE = 0.3


_NUMBERED = re.compile(r"^(?:\d+\.)*\d+\.?\s+")


def skipped(block: dict, words: list[str]) -> bool:
    """Whether a block is in a section no task reads (generate.skip_sections): a heading of its path starts with
    one of `words` as whole words (case ignored), or is a version number, or its paragraphs are a changelog's."""
    starts = re.compile(rf"^(?:{'|'.join(map(re.escape, words))})(?!\w)", re.IGNORECASE) if words else None
    # A manual numbers its sections: "2.9. AUTHOR" is an Authors section.
    if any(_VERSION.match(h) or (starts and starts.match(_NUMBERED.sub("", h))) for h in headings(block)):
        return True
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", block.get("text") or "") if p.strip()]
    versions = sum(bool(_VERSION.match(p)) for p in paragraphs)
    return versions >= 2 and versions >= CHANGELOG_SHARE * len(paragraphs)
