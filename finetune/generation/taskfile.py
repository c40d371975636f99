"""The task file (tasks.yaml): every task as data, loaded and validated whole.

A task names its builder (finetune.generation.builders), the blocks it reads (kind, optional heading/title patterns
whose named groups become placeholders, required table columns), its question phrasings, the answer template, which
key points evaluate scores, and its format check (finetune.generation.checks). Domain words (product families,
column names, heading conventions, out-of-domain questions) live in the task file, never in Python. Any problem stops
the run with one line naming the file, the line and the key, e.g.
`tasks.yaml:41: tasks.SPEC.check.name: unknown check 'unitt' (did you mean numbered_steps?)`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finetune.generation import checks
from finetune.io import InputError
from finetune.schema import BLOCK_KINDS

BUILDERS = ("section", "table", "row", "steps", "definitions", "code", "conversation", "refusal")
_KEY = "@"  # a validator's message "@name: …" points at the sub-key `name` of the value it checks


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(v: str | None) -> str | None:
    if v is not None:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
    return v


class Select(Model):
    """Which blocks a task reads. A block qualifies when every given condition holds."""

    kind: list[str] = Field(min_length=1)  # block kinds (section, list, table, definitions, code, row, qa)
    heading: str | None = None  # regex searched in the block's own heading; named groups become placeholders
    title: str | None = None  # regex searched in the heading path ("A / B / C"); named groups too
    columns: list[str] = []  # table/row blocks: these columns must all be present
    min_items: int = Field(0, ge=0)  # blocks with at least this many items (a section's bullets, a list's steps)
    min_words: int = Field(0, ge=0)  # blocks whose text has at least this many words
    # Only blocks under a heading path that no other (non-fallback) enabled task reads: the generic tasks fill in
    # what the corpus-specific ones leave, and never ask about a section twice.
    fallback: bool = False

    @field_validator("kind", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("kind")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for kind in v:
            if kind not in BLOCK_KINDS:
                near = difflib.get_close_matches(kind, BLOCK_KINDS, n=1)
                raise ValueError(
                    f"unknown block kind {kind!r} ({f'did you mean {near[0]}?' if near else ', '.join(BLOCK_KINDS)})"
                )
        return v

    @field_validator("heading", "title")
    @classmethod
    def _patterns(cls, v: str | None) -> str | None:
        return _regex(v)


class Each(Model):
    """Row builder: one item per part of this column's cell (e.g. one per informal name)."""

    column: str
    separator: str = ";"


class TableOptions(Model):
    """How the table builder reads a table: which column names a row, which holds units, which are qualifiers."""

    key: list[str] = []  # candidate row-key columns, first present wins; none present: the first column
    aside: list[str] = []  # shown in brackets after the key, e.g. Symbol: "supply voltage (VDD)"
    unit: list[str] = []  # candidate unit columns; without one a header's "(unit)" or "[unit]" is the unit
    qualifiers: dict[str, str] = {}  # value columns that qualify the key, e.g. Typ: typical -> "typical supply …"
    skip: list[str] = []  # columns never asked about (notes, conditions)
    notes: list[str] = []  # a row whose key cell starts with one of these words is a note, not values ("Note")


class StepsOptions(Model):
    """Steps builder: an ordered list is a procedure when its items read as instructions, decided by shape only."""

    min_items: int = Field(2, ge=1)
    min_words: int = Field(3, ge=1)  # an item counts as a step when it has at least this many words
    min_share: float = Field(1.0, gt=0, le=1)  # share of items that must count as steps
    lead: bool = False  # also require a lead paragraph before the list
    # Given, a list is a procedure only when at least instruction_share of its items start with one of these words
    # (a language's instruction verbs: "Run", "Copy"): a numbered list of notes or names is no procedure.
    instruction_words: list[str] = []
    instruction_share: float = Field(0.5, gt=0, le=1)


class CodeOptions(Model):
    """Code builder: which code blocks are examples worth asking for, and when a heading reads as a task."""

    lead: bool = False  # only a section whose code has a lead paragraph (bare code says nothing of what it does)
    instruction_words: list[str] = []  # a heading starting with one ("Add a link") fills {howto}: "How do I …?"
    # A section's later code blocks join its answer while it stays within this many characters (0: all of them);
    # the first always does. The rest are in the section's own answer.
    max_chars: int = Field(0, ge=0)


class Seed(Model):
    """One few-shot example the teacher is shown: the kind of pair the user wants, from a passage of their own."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class TeacherTask(Model):
    """Opt-in to teacher-written pairs (generate.teacher): each block the task reads is sent to the teacher."""

    description: str = Field(min_length=1)  # what the pairs are for, in the words the teacher is given
    pairs_per_chunk: int = Field(3, ge=1)  # pairs asked for per block; each kept one costs one more (judge) request
    seeds: list[Seed] = []  # few-shot examples shown to the teacher (their shape and length, not their facts)


class Check(Model):
    name: str
    args: checks.Args

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Task(Model):
    prefix: str
    builder: Literal[BUILDERS]  # type: ignore[valid-type]
    blocks: Select | None = None  # every builder but refusal needs it
    questions: list[str] = Field(min_length=1)  # phrasings with {placeholders}; refusal: the questions themselves
    # The phrasings in other languages than the task file's `language`, e.g. {de: ["Was ist …?"]}: a block written
    # in one of them (detected by the file's `languages:` words) is asked in it; in a language with none, not at all.
    phrasings: dict[str, list[str]] = {}
    # A later part of a cut section, asked as the next turn after the part before it ("What else should I know
    # about {heading}?"): in the task file's language. Empty: each part is asked alone, by what it says.
    follow_up: list[str] = []
    answer: str | None = None  # template over the item's fields; None: the builder's own answer
    keypoints: Literal["none", "sentences", "items"] = "none"  # what evaluate's key-point coverage checks
    check: Check
    each: Each | None = None
    table: TableOptions = TableOptions()
    steps: StepsOptions = StepsOptions()
    code: CodeOptions = CodeOptions()
    terms: str | None = None  # definitions: only terms matching this regex (e.g. '^-' for options)
    # definitions: terms that are labels of a note, not terms it defines ("NOTE: …", "Warning: …"), any case
    labels: list[str] = []
    teacher: TeacherTask | None = None  # pairs written by the teacher LLM from each block read (None: rules only)

    @field_validator("check", mode="before")
    @classmethod
    def _check(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"name": v}
        if not isinstance(v, dict) or "name" not in v:
            raise ValueError(f"expected {{name: CHECK, …arguments}} with CHECK one of {', '.join(checks.CHECKS)}")
        name = v["name"]
        if name not in checks.CHECKS:
            near = difflib.get_close_matches(str(name), list(checks.CHECKS), n=1, cutoff=0.4)
            hint = f"did you mean {near[0]}?" if near else f"one of {', '.join(checks.CHECKS)}"
            raise ValueError(f"{_KEY}name: unknown check {name!r} ({hint})")
        try:
            args = checks.parse_args(name, {k: a for k, a in v.items() if k != "name"})
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ValueError(f"{_KEY}{key}: {msg}" if key else msg) from None
        return Check(name=name, args=args)

    @field_validator("terms")
    @classmethod
    def _terms(cls, v: str | None) -> str | None:
        return _regex(v)

    @model_validator(mode="after")
    def _needs(self) -> Task:
        if self.builder != "refusal" and self.blocks is None:
            raise ValueError(f"{_KEY}blocks: the {self.builder} builder needs `blocks: {{kind: …}}`")
        if self.teacher is not None and self.builder in ("refusal", "conversation"):
            raise ValueError(f"{_KEY}teacher: the {self.builder} builder has no passage for the teacher to read")
        if self.builder == "row" and self.answer is None:
            raise ValueError(f"{_KEY}answer: the row builder needs an answer template over the row's columns")
        return self


class Quality(Model):
    """The words of the corpus's languages that finetune.generation.quality's checks need; none: those checks count
    nothing (mixed_language needs two languages, non_procedure_steps then checks the shape of the steps only)."""

    stopwords: dict[str, list[str]] = {}  # language -> its function words (the, and, of …; der, die, und …)
    instruction_words: dict[str, list[str]] = {}  # language -> words an instruction starts with (run, copy, set …)

    @field_validator("stopwords", "instruction_words")
    @classmethod
    def _words(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for lang, words in v.items():
            if not words or not all(isinstance(w, str) and w.strip() and " " not in w.strip() for w in words):
                raise ValueError(f"{_KEY}{lang}: expected a list of single words")
        return v


class TaskFile(Model):
    tasks: dict[str, Task] = Field(min_length=1)
    language: str | None = None  # the language of the tasks' `questions` (e.g. en); needed with `languages`
    # Function words per language (e.g. {en: [the, and, …], de: [der, und, …]}): declared, each block's language is
    # detected (finetune.generation.languages) and only phrasings in that language ask about it.
    languages: dict[str, list[str]] = {}
    quality: Quality = Quality()  # optional: language knowledge for the data-quality counts
    path: str = "tasks.yaml"  # where it was read from: error messages and refusal sources name it

    @model_validator(mode="after")
    def _languages(self) -> TaskFile:
        if self.languages and self.language not in self.languages:
            raise ValueError(f"{_KEY}language: name the language of `questions`, one of {', '.join(self.languages)}")
        for name, task in self.tasks.items():
            for lang in task.phrasings:
                if lang not in self.languages or lang == self.language:
                    known = [k for k in self.languages if k != self.language]
                    hint = f"one of {', '.join(known)}" if known else "declare it in `languages:` first"
                    raise ValueError(f"{_KEY}tasks.{name}.phrasings.{lang}: not another language of the file ({hint})")
        return self

    def questions(self, task: Task, language: str | None) -> tuple[str, list[str]] | None:
        """(where in the task file, phrasings) that ask about a block in `language` (None: unknown, the file's own
        language); None when the task has none in it."""
        if language is None or language == self.language:
            return "questions", task.questions
        found = task.phrasings.get(language)
        return (f"phrasings.{language}", found) if found else None


# --- loading: one-line errors with the YAML line ------------------------------------------------------------


def _line(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the deepest node of `loc` found in the composed YAML."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _problem(error: dict) -> tuple[tuple, str]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg = error["msg"].removeprefix("Value error, ")
    if msg.startswith(_KEY):
        key, _, msg = msg[len(_KEY) :].partition(": ")
        loc += tuple(int(k) if k.isdigit() else k for k in key.split("."))
    if error["type"] == "extra_forbidden":
        parts = {"blocks": Select, "each": Each, "table": TableOptions, "steps": StepsOptions, "code": CodeOptions}
        parts["teacher"] = TeacherTask
        if loc[0] == "quality":
            model = Quality if len(loc) == 2 else None
        else:
            model = {1: TaskFile, 3: Task}.get(len(loc)) or (parts.get(str(loc[2])) if len(loc) == 4 else None)
        names = [n for n in model.model_fields if n != "path"] if model else []
        near = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f" (did you mean {near[0]}?)" if near else f" (valid: {', '.join(names)})" if names else ""
        msg = f"not a key here{hint}"
    elif error["type"] == "missing":
        msg = "is missing"
    elif error["type"] == "literal_error":
        msg = f"{msg[0].lower()}{msg[1:]} (got {error.get('input')!r})"
    return loc, msg


def parse(data: object, source: str | os.PathLike = "tasks.yaml", node: yaml.Node | None = None) -> TaskFile:
    if not isinstance(data, dict):
        raise InputError(source, "expected a mapping with a `tasks:` key")
    try:
        return TaskFile.model_validate({**data, "path": str(source)})
    except ValidationError as e:
        # A misspelt key also makes its intended key "missing": name the misspelling, the cause, first.
        errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        loc, msg = _problem(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        dotted = ".".join(str(p) for p in loc)
        raise InputError(source, f"{dotted}: {msg}{more}", _line(node, loc)) from None


def load(path: str | os.PathLike) -> TaskFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(p, "task file not found (run from the repository root or pass --tasks)") from None
    data, node = read_yaml(p, text)
    return parse(data, p, node)


def read_yaml(p: Path, text: str) -> tuple[object, yaml.Node | None]:
    """(data, its root node) of a YAML file in one parse: the nodes give each error its line (`_line`). A file of
    nothing but comments is (None, None); bad YAML stops with one line naming the file and line."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(p, f"not valid YAML: {getattr(e, 'problem', e)}", mark.line + 1 if mark else None) from None
    return data, node


def enabled(taskfile: TaskFile, names: list[str], params_source: str = "params.yaml") -> dict[str, Task]:
    """The tasks `generate.tasks` lists, in its order; one it lists that the task file lacks is an error."""
    missing = [n for n in names if n not in taskfile.tasks]
    if missing:
        near = difflib.get_close_matches(missing[0], list(taskfile.tasks), n=1)
        hint = f"did you mean {near[0]}?" if near else f"tasks there: {', '.join(taskfile.tasks)}"
        raise InputError(
            params_source, f"generate.tasks lists {', '.join(missing)}, not a task of {taskfile.path} ({hint})"
        )
    return {n: taskfile.tasks[n] for n in names}
