"""Named format checks: is a model's answer shaped like a valid answer of its task?

A task in the task file picks one by name with its arguments, e.g. `check: {name: regex, pattern: '^\\d'}`;
evaluate and baseline apply it to every prediction. Each check is a function of the answer, the reference answer and
the example's meta (facts generate stored, such as the unit of a value), and its arguments, validated when the task
file loads so a typo fails before any model runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_NUMBER = re.compile(r"\d")
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(Args):
    pass


class NumberedSteps(Args):
    min_steps: int = Field(2, ge=1)


class Exact(Args):
    text: str | None = None  # None: the example's own reference answer (a refusal's text, a fixed reply)


class Regex(Args):
    pattern: str
    full: bool = False  # True: the whole answer must match, not just a part of it
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


class MinWords(Args):
    words: int = Field(ge=1)
    ends_with: list[str] = []  # e.g. [".", "!", "?"]: the answer must end a sentence


class OneOf(Args):
    options: list[str] = Field(min_length=1)


class JsonSchema(Args):
    schema_: dict = Field(alias="schema")

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: dict) -> dict:
        try:
            import jsonschema
        except ImportError:
            raise ValueError("json_schema needs the jsonschema package: pip install jsonschema") from None
        try:
            jsonschema.validators.validator_for(v).check_schema(v)
        except jsonschema.SchemaError as e:
            raise ValueError(f"not a valid JSON schema: {e.message}") from None
        return v


def _nonempty(answer: str, reference: str, meta: dict, args: NoArgs) -> bool:
    return bool(answer.strip())


def _numbered_steps(answer: str, reference: str, meta: dict, args: NumberedSteps) -> bool:
    lines = [ln.strip() for ln in answer.splitlines() if ln.strip()]
    return len(lines) >= args.min_steps and all(ln.startswith(f"{i}. ") for i, ln in enumerate(lines, start=1))


def _value_with_unit(answer: str, reference: str, meta: dict, args: NoArgs) -> bool:
    unit = meta.get("unit", "")
    return bool(_NUMBER.search(answer)) and (not unit or unit.casefold() in answer.casefold())


def _exact(answer: str, reference: str, meta: dict, args: Exact) -> bool:
    return normalise(answer) == normalise(args.text if args.text is not None else reference)


def _regex(answer: str, reference: str, meta: dict, args: Regex) -> bool:
    pattern = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
    text = answer.strip()
    return bool(pattern.fullmatch(text) if args.full else pattern.search(text))


def _min_words(answer: str, reference: str, meta: dict, args: MinWords) -> bool:
    text = answer.strip()
    return len(text.split()) >= args.words and (not args.ends_with or text.endswith(tuple(args.ends_with)))


def _one_of(answer: str, reference: str, meta: dict, args: OneOf) -> bool:
    return normalise(answer) in {normalise(o) for o in args.options}


def _json_schema(answer: str, reference: str, meta: dict, args: JsonSchema) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(answer), args.schema_)
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


# name -> (function, its arguments' model)
CHECKS: dict[str, tuple[Callable[..., bool], type[Args]]] = {
    "nonempty": (_nonempty, NoArgs),
    "numbered_steps": (_numbered_steps, NumberedSteps),
    "value_with_unit": (_value_with_unit, NoArgs),
    "exact": (_exact, Exact),
    "regex": (_regex, Regex),
    "min_words": (_min_words, MinWords),
    "one_of": (_one_of, OneOf),
    "json_schema": (_json_schema, JsonSchema),
}


def parse_args(name: str, args: dict[str, Any]) -> Args:
    """The check's arguments, validated (pydantic's ValidationError on a bad one)."""
    return CHECKS[name][1].model_validate(args)


def passes(name: str, args: Args, answer: str, reference: str, meta: dict) -> bool:
    return CHECKS[name][0](answer, reference, meta, args)
