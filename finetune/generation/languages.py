"""Which language a block is written in, by counting the function words the task file gives for each language.

Function words (articles, conjunctions, prepositions) occur in any text of a language whatever it is about, so the
language whose words a block uses most is the block's. The words are the task file's (`languages:`), never this
module's: a corpus in another language needs a task-file edit, not a code edit.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")


def word_sets(languages: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """Each language's function words, less those of two languages (they say nothing about which one)."""
    counts = Counter(w for words in languages.values() for w in {x.casefold() for x in words})
    return {
        lang: frozenset(w.casefold() for w in words if counts[w.casefold()] == 1) for lang, words in languages.items()
    }


def detect(text: str, words: dict[str, frozenset[str]]) -> str | None:
    """The language whose function words `text` uses most; None when it uses none, or two as much."""
    tokens = Counter(_WORD.findall(text.casefold()))
    hits = sorted(((sum(tokens[w] for w in ws), lang) for lang, ws in words.items()), reverse=True)
    if not hits or hits[0][0] == 0 or (len(hits) > 1 and hits[1][0] == hits[0][0]):
        return None
    return hits[0][1]
