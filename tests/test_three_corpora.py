"""The three sample domains in three conventions, each with its own task file and params, and no code of its own:
the heating maker's manuals and catalog (domains/heating), an invented command-line tool's reference
(domains/cli_tool: option lists, code, no tables) and invented board datasheets (domains/datasheets:
Symbol/Min/Typ/Max/Unit and pin tables, one PDF); the last two use only the generic tasks.

(extract's row conventions are params: the heating maker's, in domains/heating/params.yaml; the other two set none.)
Every example must name its section's subject, take its answer from its own source, and every corpus must pass
validate with nothing over model.max_seq_len."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from finetune.documents.corpus import run as extract
from finetune.generation.examples import merge_duplicates
from finetune.generation.examples import run as generate
from finetune.generation.taskfile import load
from finetune.params import load_params
from tests.benchmarks.corpus_report import block_text, grounded
from tests.conftest import REPO, domain_params, row_labels

CORPORA = {
    "heating": {
        "TERMINOLOGY": 255, "SPEC": 137, "PROCEDURE": 18, "EXPLANATION": 12, "WIRING": 6, "TROUBLESHOOTING": 38,
        "QA": 40, "SECTION": 7, "REFUSAL": 148,
    },
    "cli_tool": {"OPTION": 16, "DEFINITION": 14, "CODE": 8, "SECTION": 19, "REFUSAL": 148},
    "datasheets": {"TABLE": 184, "SECTION": 14, "REFUSAL": 148},
}  # fmt: skip
NAMING = re.compile(r"[^\W_]{3,}|\d+")  # words that can name a subject: not "of", "a", "on"


@pytest.fixture(scope="module", params=sorted(CORPORA))
def made(request, monkeypatch_module):
    monkeypatch_module.chdir(REPO)  # sources are relative to the repository, as in the pipeline
    domain = REPO / "domains" / request.param
    params = load_params([REPO / "params.yaml", domain / "params.yaml"])
    rows = row_labels(domain_params(request.param))  # the domain's own row conventions (heating's only)
    blocks, _ = extract(
        f"domains/{request.param}/raw", params.extract.min_chars, max_chars=params.extract.max_chars, rows=rows
    )
    examples, _ = merge_duplicates(generate(blocks, params.generate, load(domain / "tasks.yaml")))
    return request.param, {b["id"]: b for b in blocks}, examples, params


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_each_corpus_gets_its_expected_examples_per_task(made):
    corpus, _, examples, _ = made
    assert dict(Counter(e["task"] for e in examples)) == CORPORA[corpus]


def test_every_question_names_the_subject_of_its_section(made):
    _, blocks, examples, PARAMS = made
    for e in examples:
        block = blocks.get(e["block_id"])
        if block is None or block["kind"] == "qa":  # refusals have no block; an imported question is the user's
            continue
        subject = {w.casefold() for h in block["headings"] for w in NAMING.findall(h)}
        question = {w.casefold() for w in NAMING.findall(e["messages"][-2]["content"])}
        assert subject & question, f"{e['source']}: {e['messages'][-2]['content']!r} names none of {block['headings']}"


def test_every_answer_comes_from_its_source(made):
    _, blocks, examples, PARAMS = made
    # A section's code examples are one answer (builders.code_sections): its source is every block of the section.
    by_source: dict[str, str] = {}
    for b in blocks.values():
        by_source[b["source"]] = f"{by_source.get(b['source'], '')} {block_text(b)}"
    for e in examples:
        if e["task"] == "REFUSAL":
            assert e["messages"][-1]["content"] == PARAMS.generate.refusal
            continue
        answer = e["messages"][-1]["content"]
        assert grounded(answer, by_source[blocks[e["block_id"]]["source"]]), f"{e['source']}: {answer[:120]!r}"


@pytest.mark.slow
def test_each_corpus_passes_validate_with_nothing_over_max_seq_len(made, tmp_path):
    from finetune.generation.splits import run as split
    from finetune.io import write_jsonl
    from finetune.training.base_model import corpus_texts, train_tokenizer
    from finetune.validation.expectations import run as validate

    corpus, blocks, examples, PARAMS = made
    # The tiny default base's tokenizer, trained on this corpus as the base stage trains it.
    train_tokenizer(corpus_texts(list(blocks.values())), PARAMS.model.tiny.vocab_size).save_pretrained(tmp_path / "m")
    train, val, _ = split(examples, PARAMS.balance, PARAMS.split)
    for name, rows in (("train", train), ("val", val)):
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
    p = PARAMS
    metrics, lines = validate(
        tmp_path / "train.jsonl", tmp_path / "val.jsonl", tmp_path / "m", tmp_path / "validation.json",
        tmp_path / "docs", tasks=p.generate.tasks, max_seq_len=p.model.max_seq_len, max_ratio=p.balance.max_ratio,
        val_fraction=p.split.val_fraction, tolerance=p.validate_.val_fraction_tolerance,
        max_answer_chars=p.validate_.max_answer_chars,
    )  # fmt: skip
    assert metrics["success"], f"{corpus}:\n" + "\n".join(lines)
    for split_name in ("train", "val"):
        assert metrics["expectations"][f"{split_name}_fits_max_seq_len"]["observed"] <= p.model.max_seq_len
