"""Two corpora of ours in the conventions real documents have (issue #19), through extract and generate as a new
domain's first `dvc repro` would run them, and the quality counts the issue's goals name:

- tests/data/orrin_catalog: an invented vendor's LED-driver datasheets: front matter titles, a Contents list, the
  same headings in every datasheet, pin tables as two column pairs side by side, Min/Typ/Max ratings, a section in
  German, compliance and legal text repeated word for word.
- tests/data/quillsync_reference: an invented sync tool's reference: command pages sharing their headings, option
  lists of fragments ("the folder to send"), code led in by a sentence ending in a colon, a 50-line listing, a
  changelog.

Each folder holds raw/, tasks.yaml and params.yaml, as a domain does; generate measures with a tiny real tokenizer
(see tokenizer_dir) and under the tight budget of a small base model (TIGHT), so the token budget is tested hard.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
import yaml

from finetune.generation.builders import heading_fields, headings
from finetune.generation.examples import shared_headings
from finetune.io import load_jsonl
from finetune.training.models import load_tokenizer
from finetune.validation.frames import count_tokens
from stages.extract import cli as extract_cli
from stages.generate import cli as generate_cli
from tests.conftest import REPO, assert_ok, invoke, merge, write_params

CORPORA = ("orrin_catalog", "quillsync_reference")
DATA = REPO / "tests/data"
# The sentences of the boilerplate and of the code listing the assertions look for: the corpora's own words, in the
# tests about them, never in the code.
LEGAL = "No licence to any patent or other right is granted by this document."
COMPLIANCE = "The declaration of conformity is kept by Orrin Lighting"
# The budget the pipeline had before #19's last round (a base that takes 384 tokens): these corpora's long section and
# 50-line listing fit the default 1024 whole, and the cuts are what several tests here check.
TIGHT = {"model": {"max_seq_len": 384}, "extract": {"max_chars": 800}}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """The pipeline's tokenizer builder on the corpora's paragraphs with a small vocabulary: 2.2 characters a token
    on them, as weak as the issue measured real documents at (800-character parts near 2 characters a token)."""
    from finetune.training.base_model import train_tokenizer

    paragraphs = [p for f in sorted(DATA.glob("*/raw/**/*.md")) for p in f.read_text(encoding="utf-8").split("\n\n")]
    path = tmp_path_factory.mktemp("tok")
    train_tokenizer(paragraphs * 3, vocab_size=600).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory, tokenizer_dir):
    """{corpus: (blocks, examples, generate metrics, quality counts)} from extract + generate --model."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # sources relative to the repository, as in the pipeline
        for name in CORPORA:
            tmp, folder = tmp_path_factory.mktemp(name), f"tests/data/{name}"
            tight = write_params(tmp / "params.yaml", merge(yaml.safe_load((REPO / "params.yaml").read_text()), TIGHT))
            params = ["--params", tight, "--params", f"{folder}/params.yaml"]
            assert_ok(invoke(extract_cli, [
                "--input", f"{folder}/raw", "--output", tmp / "blocks.jsonl", "--metrics", tmp / "extract.json",
                "--rejects", tmp / "rejects.json", *params,
            ]))  # fmt: skip
            assert_ok(invoke(generate_cli, [
                "--input", tmp / "blocks.jsonl", "--output", tmp / "examples.jsonl", "--tasks", f"{folder}/tasks.yaml",
                "--metrics", tmp / "generate.json", "--quality", tmp / "quality.json", "--model", tokenizer_dir,
                *params,
            ]))  # fmt: skip
            out[name] = (
                load_jsonl(tmp / "blocks.jsonl"),
                load_jsonl(tmp / "examples.jsonl"),
                json.loads((tmp / "generate.json").read_text()),
                json.loads((tmp / "quality.json").read_text()),
            )
    return out


def qa(e: dict) -> tuple[str, str]:
    return e["messages"][-2]["content"], e["messages"][-1]["content"]


@pytest.mark.parametrize("name", CORPORA)
def test_no_example_is_over_the_base_models_token_budget(made, name, tokenizer_dir):
    _, examples, metrics, _ = made[name]
    lengths, _ = count_tokens(load_tokenizer(tokenizer_dir), [e["messages"] for e in examples])
    assert max(lengths) <= TIGHT["model"]["max_seq_len"]
    # The listing's flush() is one statement of 229 tokens at this tokenizer: with its lead and question it is over
    # 384, and a program is cut only where a statement starts, so it is left out and counted, not taught by halves.
    assert metrics["dropped_over_budget"] == {"orrin_catalog": 0, "quillsync_reference": 1}[name]


@pytest.mark.parametrize("name", CORPORA)
@pytest.mark.parametrize(
    "problem", ["ambiguous", "unnamed_subject", "toc_subject", "dangling_lead_in", "mixed_language", "pasted_lead_in"]
)
def test_the_quality_counts_the_issue_names_are_zero(made, name, problem):
    assert made[name][3][problem] == 0


@pytest.mark.parametrize("name", CORPORA)
def test_no_question_has_two_answers_and_no_part_is_asked_by_number(made, name):
    # A question is every turn before the answer: "Tell me more about Dimming." after two different parts asks two
    # different things.
    answers = defaultdict(set)
    for e in made[name][1]:
        asked = tuple(m["content"].casefold() for m in e["messages"][1:-1])
        answers[asked].add(qa(e)[1])
    assert all(len(a) == 1 for a in answers.values())
    assert not [q for q in answers if re.search(r"\(part \d|\(\"?\d+\"?\)", q[-1])]


@pytest.mark.parametrize("name", CORPORA)
def test_every_question_about_a_heading_several_documents_share_names_its_document(made, name):
    blocks, examples, _, _ = made[name]
    shared, by_id = shared_headings(blocks), {b["id"]: b for b in blocks}
    about_shared = [e for e in examples if e["block_id"] in shared]
    assert about_shared  # the corpus has such headings: Description, Examples, Options …
    for e in about_shared:
        document = heading_fields(by_id[e["block_id"]], None)["document"]
        assert document.casefold() in qa(e)[0].casefold(), qa(e)[0]


@pytest.mark.parametrize("name", CORPORA)
def test_no_answer_ends_on_a_lead_in_and_every_fence_is_closed(made, name):
    for e in made[name][1]:
        _, a = qa(e)
        assert not a.rstrip().endswith((":", "：")), a
        assert a.count("```") % 2 == 0, a


def test_the_catalogs_contents_list_is_no_subject_and_its_documents_are_named_by_their_front_matter(made):
    blocks, examples, _, _ = made["orrin_catalog"]
    assert not [b for b in blocks if "Contents" in headings(b)]
    assert {b["document"] for b in blocks} == {f"OLD-{n} constant-current LED driver" for n in (350, 700, 1050)}
    assert not [q for q, _ in map(qa, examples) if "Contents" in q]


def test_boilerplate_repeated_in_every_datasheet_is_one_documents_examples(made):
    for sentence in (LEGAL, COMPLIANCE):
        files = {e["source"].split("#")[0] for e in made["orrin_catalog"][1] if sentence in qa(e)[1]}
        assert len(files) == 1, files
    assert made["orrin_catalog"][2]["boilerplate_merged"] > 0


def test_the_german_section_is_asked_in_german_and_nothing_mixes_two_languages(made):
    german = [qa(e) for e in made["orrin_catalog"][1] if "Konstantstromtreiber" in qa(e)[1] or "Ketten" in qa(e)[1]]
    assert german and all(q.startswith(("[QA] Was sollte ich", "[QA] Erkläre mir")) for q, _ in german)
    english = [q for q, a in map(qa, made["orrin_catalog"][1]) if "[QA] What" in q or "[SPEC]" in q]
    assert english and not [q for q in english if "Beschreibung" in q]


def test_side_by_side_pin_columns_and_min_typ_max_ratings_read_right(made):
    answers = {q: a for q, a in map(qa, made["orrin_catalog"][1])}
    fault = [a for q, a in answers.items() if "FAULT" in q and "OLD-700" in q and "function" in q.casefold()]
    assert fault == ["Open-drain fault output"]  # pin 7, from the right-hand pair of columns
    vin = [a for q, a in answers.items() if "maximum input voltage" in q and "OLD-350" in q]
    assert vin and all(a == "Max 30 V" for a in vin)  # the qualifier stays in the answer


def test_a_long_section_of_the_catalog_is_asked_part_by_part_by_its_bold_leads(made):
    parts = [b for b in made["orrin_catalog"][0] if "#part=" in b["source"]]
    labels = {b["part"] for b in parts if b.get("part")}
    assert labels and labels <= {"Wiring length", "Dimming", "Thermal design", "Faults"}


def test_options_are_answered_in_sentences_and_code_with_its_lead(made):
    examples = made["quillsync_reference"][1]
    options = [a for e in examples if e["task"] == "OPTION" for a in [qa(e)[1]]]
    assert options and all(a[0].isupper() and a.endswith(".") for a in options)
    code = [qa(e) for e in examples if e["task"] == "CODE"]
    assert code and all(not a.startswith("```") and "```" in a for _, a in code)  # lead sentence, then the code
    assert not [q for q, _ in code if "How do I to " in q or ":" in q.split("]", 1)[1]]  # no lead pasted in


def test_the_long_listing_is_cut_between_lines_into_pieces_asked_apart(made):
    blocks, examples, metrics, _ = made["quillsync_reference"]
    listing = [qa(e) for e in examples if e["task"] == "CODE" and "Watching a folder" in qa(e)[0]]
    assert len(listing) > 1 and len({q for q, _ in listing}) == len(listing)
    source = next(b for b in blocks if b["kind"] == "code" and "def main():" in b["code"])["code"]
    for _, a in listing:
        for code in re.findall(r"```python\n(.*?)\n```", a, re.DOTALL):
            assert all(line in source.splitlines() for line in code.splitlines())
    assert metrics["cut_to_fit"] >= 1
