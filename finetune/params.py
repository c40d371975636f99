"""params.yaml as typed objects: one pydantic model per section, the whole file validated whenever a command loads it.

A stage reads `params.train.learning_rate`, never `params["train"]["learning_rate"]`. An unknown key, a missing key
or a wrong type stops any command at once with one line naming the key, e.g.
`params.yaml: lora.rr is not a key of lora (did you mean r?)`. Keys are the names users type in
`dvc exp run -S section.key=value`, so they never change without a note.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finetune.io import InputError


class Section(BaseModel):
    # extra="forbid": a typo (lora.rr) must fail, not silently train with the default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Extract(Section):
    min_chars: int = Field(40, ge=0)  # prose blocks shorter than this (a lead-in like "Follow these steps:") drop
    max_chars: int = Field(800, ge=0)  # a longer section is cut into parts (0: never); sized in params.yaml
    on_error: Literal["fail", "skip"] = "fail"
    # How a corpus writes table rows as lines of a page (documents/pages.py): its own words, so the defaults here
    # know none; params.yaml holds the sample corpus's.
    labelled_rows: list[list[str]] = Field(default_factory=list)  # each: one row kind's labels, in column order
    key_value_columns: list[str] = Field(default_factory=list)  # [name, value, unit] columns of `Name: 24 kW` rows
    key_value_headings: list[str] = Field(default_factory=list)  # page headings where any `Name: value` is a row

    @field_validator("labelled_rows")
    @classmethod
    def _labels(cls, rows: list[list[str]]) -> list[list[str]]:
        if any(len(labels) < 2 for labels in rows):
            raise ValueError("each list needs at least two labels (a row of one label is a `Name: value` line)")
        seen = [label.casefold() for labels in rows for label in labels]
        if len(seen) != len(set(seen)):
            raise ValueError("a label may start a line of one row kind only")
        return rows

    @field_validator("key_value_columns")
    @classmethod
    def _columns(cls, columns: list[str]) -> list[str]:
        if columns and len(columns) != 3:
            raise ValueError("give three column names (name, value, unit), or none")
        return columns


class Teacher(Section):
    endpoint: str | None
    model: str | None
    paraphrases: int = Field(ge=0)
    temperature: float = Field(ge=0)
    max_tokens: int = Field(ge=1)
    concurrency: int = Field(ge=1)
    timeout_s: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    backoff_s: float = Field(ge=0)
    api_key_env: str
    cache: str


class Generate(Section):
    seed: int
    tasks: list[str] = Field(min_length=1)  # names of tasks in the task file (tasks.yaml)
    system_prompt: str
    refusal: str
    override_system_prompt: bool = False  # imported conversations keep their own system message unless true
    phrasings_per_item: int = Field(ge=1)
    teacher: Teacher


class Balance(Section):
    seed: int
    max_ratio: float = Field(ge=1)
    max_upsample: int = Field(ge=1)
    min_examples: int = Field(ge=1)


class Split(Section):
    seed: int
    val_fraction: float = Field(gt=0, lt=1)


class Validate(Section):
    val_fraction_tolerance: float = Field(ge=0, lt=1)
    max_answer_chars: int = Field(4000, ge=1)  # a longer answer is a pasted document or a runaway generation
    on_overlong: Literal["fail", "drop"] = "fail"  # examples over model.max_seq_len tokens


class Tiny(Section):
    vocab_size: int = Field(ge=300)  # the byte alphabet (256) and the special tokens come first
    hidden_size: int = Field(ge=64)  # bitsandbytes' CPU 4-bit path packs weights in blocks of 64
    intermediate_size: int = Field(ge=64)
    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int = Field(ge=1)
    seed: int
    pretrain_steps: int = Field(ge=0)
    pretrain_batch_size: int = Field(ge=1)
    pretrain_lr: float = Field(gt=0)


class Model(Section):
    name: str
    revision: str
    dtype: str
    max_seq_len: int = Field(ge=16)
    trust_remote_code: bool
    tiny: Tiny


class Quant(Section):
    load_in_4bit: bool
    bnb_4bit_quant_type: Literal["nf4", "fp4"]
    bnb_4bit_use_double_quant: bool
    bnb_4bit_compute_dtype: str


class Lora(Section):
    r: int = Field(ge=1)
    alpha: float = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)
    target_modules: str | list[str]
    bias: Literal["none", "all", "lora_only"]
    use_rslora: bool
    use_dora: bool


class Train(Section):
    seed: int
    epochs: float = Field(gt=0)
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: str
    warmup_steps: int = Field(ge=0)
    per_device_train_batch_size: int = Field(ge=1)
    gradient_accumulation_steps: int = Field(ge=1)
    optim: str
    weight_decay: float = Field(ge=0)
    max_grad_norm: float = Field(ge=0)
    gradient_checkpointing: bool
    packing: bool
    completion_only_loss: bool
    eval_strategy: Literal["epoch", "steps"]
    eval_steps: int = Field(ge=1)
    early_stopping_patience: int = Field(ge=0)
    load_best_model_at_end: bool
    save_total_limit: int = Field(ge=1)
    logging_steps: int = Field(ge=1)
    num_processes: int = Field(ge=1)
    accelerate_config: str | None
    gpu_hourly_cost: float | None = Field(ge=0)


class Eval(Section):
    batch_size: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    examples_per_task: int = Field(ge=0)
    concurrency: int = Field(ge=1)
    timeout_s: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    backoff_s: float = Field(ge=0)
    api_key_env: str


class Params(Section):
    extract: Extract = Extract()
    generate: Generate
    balance: Balance
    split: Split
    validate_: Validate = Field(alias="validate")  # `validate` is a BaseModel method name
    model: Model
    quant: Quant
    lora: Lora
    train: Train
    eval: Eval

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())


def _fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _section_model(loc: tuple) -> type[BaseModel]:
    """The model that holds the key at `loc` (a pydantic error location), for naming the valid keys."""
    model: type[BaseModel] = Params
    for key in loc[:-1]:
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        annotation = fields[key].annotation if key in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def _problem(error: dict) -> str:
    loc = tuple(str(p) for p in error["loc"])
    dotted = ".".join(loc)
    if error["type"] == "extra_forbidden":
        model = _section_model(loc)
        where = ".".join(loc[:-1]) or "params.yaml"
        near = difflib.get_close_matches(loc[-1], _fields(model), n=1)
        hint = f" (did you mean {near[0]}?)" if near else f" (valid: {', '.join(_fields(model))})"
        return f"{dotted} is not a key of {where}{hint}"
    if error["type"] == "missing":
        return f"{dotted} is missing"
    got = error.get("input")
    return f"{dotted}: {error['msg'][0].lower()}{error['msg'][1:]} (got {got!r})"


def parse(data: object, source: str | os.PathLike = "params.yaml") -> Params:
    """Validate plain data (a parsed params.yaml) as Params; the first problem raises InputError."""
    if not isinstance(data, dict):
        raise InputError(source, "expected a mapping of sections (extract, generate, …)")
    try:
        return Params.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(source, _problem(errors[0]) + more) from None


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(p, "params file not found (run from the repository root or pass --params)") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(
            p, f"not valid YAML: {getattr(e, 'problem', e)}", None if line is None else line + 1
        ) from None
    return parse(data, p)
