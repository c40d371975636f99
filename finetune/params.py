"""params.yaml as typed objects: one pydantic model per section, the whole file validated whenever a command loads it.

A stage reads `params.train.learning_rate`, never `params["train"]["learning_rate"]`. An unknown key, a missing key
or a wrong type stops any command at once with one line naming the key, e.g.
`params.yaml: lora.rr is not a key of lora (did you mean r?)`. Keys are the names users type in
`dvc exp run -S section.key=value`, so they never change without a note.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finetune.io import InputError


class Section(BaseModel):
    # extra="forbid": a typo (lora.rr) must fail, not silently train with the default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtractOcr(Section):
    """How scanned pages are read (documents/ocr.py): an image file, or a PDF page without a text layer."""

    languages: list[str] = Field(default_factory=lambda: ["eng"], min_length=1)  # Tesseract codes: eng, deu, ...
    dpi: int = Field(300, ge=72, le=1200)  # a scanned PDF page is rendered at this resolution for OCR
    psm: int = Field(3, ge=0, le=13)  # Tesseract's page segmentation mode (3: automatic; 4: one column)


class Extract(Section):
    min_chars: int = Field(40, ge=0)  # prose blocks shorter than this (a lead-in like "Follow these steps:") drop
    max_chars: int = Field(800, ge=0)  # a longer section is cut into parts (0: never); sized in params.yaml
    on_error: Literal["fail", "skip"] = "fail"
    # How a corpus writes table rows as lines of a page (documents/pages.py): its own words, so the defaults here
    # know none; params.yaml holds the sample corpus's.
    labelled_rows: list[list[str]] = Field(default_factory=list)  # each: one row kind's labels, in column order
    key_value_columns: list[str] = Field(default_factory=list)  # [name, value, unit] columns of `Name: 24 kW` rows
    key_value_headings: list[str] = Field(default_factory=list)  # page headings where any `Name: value` is a row
    # First headings that do not name their document ("Contents", "Description"): a corpus's words, in params.yaml.
    not_titles: list[str] = Field(default_factory=list)
    ocr: ExtractOcr = ExtractOcr()
    # A scanned page whose OCR confidence (Tesseract's, 0-100, averaged over its words) is lower is rejected.
    min_ocr_confidence: float = Field(0.0, ge=0, le=100)
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = (
        "auto"  # processes reading files at once; auto: one per core
    )
    cache: str = ""  # per-file results (documents/blockcache.py); "": none; params.yaml names one

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
    mode: Literal["paraphrase", "pairs", "both"]  # paraphrases of the rule-based questions, pairs, or both
    paraphrases: int = Field(ge=0)
    temperature: float = Field(ge=0)
    max_tokens: int = Field(ge=1)
    pairs_max_tokens: int = Field(ge=1)  # a reply of pairs_per_chunk question/answer pairs as JSON
    judge_max_tokens: int = Field(ge=1)  # a verdict, {"supported": true}
    min_grounded: float = Field(ge=0, le=1)  # share of an answer's content words that must occur in its block
    max_similarity: float = Field(ge=0, le=100)  # a question this similar (0-100) to a kept one is a duplicate
    max_answer_chars: int = Field(ge=1)  # a longer answer is dropped as too long
    on_empty: Literal["fail", "rules"]  # every pair dropped: stop, or go on with the rule-based examples
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
    # An answer at least this long that a task gave for an earlier document too is boilerplate: one example, not one
    # per document. Shorter answers are facts that repeat ("3.3 V", "Print the version and exit.").
    boilerplate_min_words: int = Field(8, ge=1)
    # How a question names its document when its heading is shared by several documents or the same question has
    # another answer elsewhere: {question} without its closing mark, {document} the document's name.
    name_document: str = "{question} ({document})"
    # all: in a domain of two or more documents every question names its document (a question about "Types" or
    # "Handling errors" says nothing of which of 30 READMEs it means, shared heading or not); shared: only those above.
    name_documents: Literal["all", "shared"] = "all"
    # Sections read by no task: a heading of the block's path starting with one of these words (case ignored), or a
    # version number ("2.0.5 (2023-01-01)", "v20.10.0": a changelog's entries). Counted as skipped_sections.
    skip_sections: list[str] = []
    teacher: Teacher


class Balance(Section):
    seed: int
    max_ratio: float = Field(ge=1)
    max_upsample: int = Field(ge=1)
    min_examples: int = Field(ge=1)


class Split(Section):
    seed: int
    val_fraction: float = Field(gt=0, lt=1)


class QualityShares(Section):
    """The largest share of generate's examples each problem of finetune.generation.quality may have (its count / all
    examples; 0: none at all). One field per problem, so a misspelt one fails like any other key; sized in
    params.yaml."""

    ambiguous: float = Field(0.0, ge=0, le=1)
    unnamed_subject: float = Field(0.02, ge=0, le=1)
    toc_subject: float = Field(0.02, ge=0, le=1)
    number_subject: float = Field(0.02, ge=0, le=1)
    dangling_lead_in: float = Field(0.02, ge=0, le=1)
    bare_code: float = Field(0.05, ge=0, le=1)
    pasted_lead_in: float = Field(0.02, ge=0, le=1)
    fragment_answer: float = Field(0.02, ge=0, le=1)
    non_procedure_steps: float = Field(0.02, ge=0, le=1)
    boilerplate_repeat: float = Field(0.02, ge=0, le=1)
    mixed_language: float = Field(0.01, ge=0, le=1)
    too_long: float = Field(0.02, ge=0, le=1)


class QualityGate(Section):
    max_share: QualityShares = QualityShares()
    on_exceed: Literal["warn", "fail"] = "warn"  # warn: one line per exceeded share, and pass; fail: stop validate


class Validate(Section):
    val_fraction_tolerance: float = Field(ge=0, lt=1)
    max_answer_chars: int = Field(4000, ge=1)  # a longer answer is a pasted document or a runaway generation
    on_overlong: Literal["fail", "drop"] = "fail"  # examples over model.max_seq_len tokens
    quality: QualityGate = QualityGate()  # generate's counts of bad examples (metrics/quality/<domain>.json)


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
    sampling_strategy: Literal["random", "group_by_length"]
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


class Judge(Section):
    # An OpenAI-compatible server grading each answer to the domain's questions (and to val with `val`) against its
    # reference as correct, partly correct or wrong. Off (endpoint null) by default: the pipeline needs no server.
    endpoint: str | None = None
    model: str | None = None
    val: bool = False  # grade val's answers too (a request per val example and model: many more requests)
    max_tokens: int = Field(96, ge=1)  # {"verdict": "partly", "reason": "<one line>"}
    max_passage_chars: int = Field(3000, ge=0)  # of the question's source document, shown to the judge
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(60, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    api_key_env: str = "OPENAI_API_KEY"
    cache: str = "data/eval/judge_cache"


class Eval(Section):
    batch_size: int = Field(ge=1)
    max_new_tokens: int = Field(ge=1)
    examples_per_task: int = Field(ge=0)
    concurrency: int = Field(ge=1)
    timeout_s: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    backoff_s: float = Field(ge=0)
    api_key_env: str
    judge: Judge = Judge()


class Compare(Section):
    # The interference check: each adapter on a sample of every other domain's val set, against the base.
    examples_per_domain: int = Field(ge=1)  # non-refusal val examples of each other domain
    refusals_per_domain: int = Field(ge=0)  # and refusal questions of each other domain
    seed: int


class Domain(Section):
    # Whose weights train starts from: "base" (a fresh adapter on models/base) or another domain, whose adapter this
    # one continues (staged training). Required: dvc.yaml reads it (${item.init_from}) to make the chain a dependency.
    init_from: str


class Params(Section):
    # The domains dvc.yaml builds, each a folder domains/<name>/ (raw/, tasks.yaml, params.yaml); a dict, so that
    # dvc.yaml's `foreach` gives each stage its name as ${key} and its entry as ${item}.
    domains: dict[str, Domain] = {}
    extract: Extract = Extract()
    compare: Compare
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


# What a domain's params.yaml may not set: the base model is built once and shared by every domain, and the list of
# domains is the repository's.
SHARED = ("domains", "model", "compare")
# models/<name> holds a domain's adapter, beside models/base, models/checkpoints and models/merged.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
RESERVED = ("base", "checkpoints", "merged")


def _read(p: Path) -> object:
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(p, "params file not found (run from the repository root or pass --params)") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(
            p, f"not valid YAML: {getattr(e, 'problem', e)}", None if line is None else line + 1
        ) from None


def overlay(base: dict, over: dict) -> dict:
    """`base` with `over` laid on top, key by key at every depth (a list or a value replaces, a mapping merges)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_params(paths: str | os.PathLike | Sequence[str | os.PathLike] = "params.yaml") -> Params:
    """params.yaml, or params.yaml overlaid with a domain's overrides (`--params params.yaml --params
    domains/<name>/params.yaml`): later files win, section by section and key by key. The result is validated whole;
    a problem is reported against the file that brought it."""
    files = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    data = _read(files[0])
    params = parse(data, files[0])
    for over_path in files[1:]:
        over = _read(over_path) or {}
        if not isinstance(over, dict):
            raise InputError(over_path, "expected a mapping of sections (generate, lora, train, …)")
        shared = [k for k in SHARED if k in over]
        if shared:
            raise InputError(over_path, f"{shared[0]} is shared by every domain: set it in {files[0]} only")
        data = overlay(data, over)
        params = parse(data, over_path)  # the files before it were valid: the problem is this one's
    for name in params.domains:
        if not NAME.fullmatch(name) or name in RESERVED:
            raise InputError(
                files[0],
                f"domains.{name}: a domain name is a folder name ([a-z0-9_-]), not one of {', '.join(RESERVED)}",
            )
        seen, at = [name], params.domains[name].init_from
        while at != "base":  # the chain of init_from must end at the base: dvc.yaml would stop on a cycle
            if at not in params.domains:
                raise InputError(files[0], f"domains.{seen[-1]}.init_from: {at!r} is neither base nor a domain")
            if at in seen:
                raise InputError(files[0], f"domains.{name}.init_from: a cycle, {' -> '.join([*seen, at])}")
            seen.append(at)
            at = params.domains[at].init_from
    return params


def params_option(command):
    """The `--params` option every command takes: params.yaml, then a domain's overrides (dvc.yaml passes both)."""
    import click

    return click.option(
        "--params",
        "params_path",
        multiple=True,
        default=["params.yaml"],
        show_default=True,
        help="params.yaml, then any overrides (repeat the option; later files win, e.g. domains/<name>/params.yaml).",
    )(command)
