"""Word-level checks of a teacher's question/answer pair: is the answer's content in its passage, and does the question
repeat one already kept.

Both are measured on words, in any language: a word is a run of letters or digits (`\\w+`, Unicode), compared
case-insensitively. Content words are the words not in STOPWORDS, a short list of English function words; in another
language every word counts as content, which makes the floor stricter, never looser.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")

# Function words only: they occur in any answer whatever its passage says, so counting them would let an answer
# built from outside knowledge pass on "the", "is" and "of" alone.
STOPWORDS = frozenset(
    """a an the and or but nor so yet if then than that this these those there here of in on at by for with from to
    into onto over under about as is are was were be been being am do does did done has have had having it its it's
    they them their he she him her his hers we us our you your i me my not no yes can could may might must shall
    should will would which who whom whose what when where why how all any each every some such also only very just
    own same other more most less""".split()  # noqa: SIM905 - a word list reads better as prose than one per line
)


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS]


def grounded_share(answer: str, passage: str) -> float:
    """Share of the answer's content words (counted with repeats) that occur in the passage; 0 for an answer with
    none (\"Yes.\" says nothing the passage can back)."""
    content = content_words(answer)
    if not content:
        return 0.0
    vocabulary = set(words(passage))
    return sum(w in vocabulary for w in content) / len(content)


class KeptQuestions:
    """Questions kept so far; `duplicate(q)` when q is at least `max_similarity` (0-100) close to one of them.

    rapidfuzz's token_sort_ratio on lower-cased, punctuation-free text: word order does not matter, and two
    questions that differ in a word or two of ten score ~90."""

    def __init__(self, max_similarity: float, questions: list[str] = ()):
        self.max_similarity = max_similarity
        self._kept: list[str] = []
        for q in questions:
            self.add(q)

    def add(self, question: str) -> None:
        from rapidfuzz import utils

        self._kept.append(utils.default_process(question))

    def duplicate(self, question: str) -> bool:
        from rapidfuzz import fuzz, process, utils

        query = utils.default_process(question)
        match = process.extractOne(query, self._kept, scorer=fuzz.token_sort_ratio, score_cutoff=self.max_similarity)
        return match is not None
