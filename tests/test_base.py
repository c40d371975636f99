"""`finetune base`: models/base holds a safetensors model and its tokenizer with a chat template, built the same way
on every run; pickled weights are never loaded."""

from __future__ import annotations

import json
import shutil

import pytest

from stages.base import cli
from finetune.io import InputError
from finetune.training.models import check_safetensors, load_base
from tests.conftest import TINY_BLOCKS, assert_ok, invoke, typed, write_params


def build(tmp_path, blocks_file, params) -> tuple:
    out = tmp_path / "base"
    result = invoke(
        cli, ["--blocks", blocks_file, "--output", out, "--params", write_params(tmp_path / "p.yaml", params)]
    )
    return result, out


def test_base_writes_config_safetensors_and_tokenizer_with_a_chat_template(tiny_base):
    from transformers import AutoTokenizer

    names = {p.name for p in tiny_base.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    config = json.loads((tiny_base / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("llama", 64, 1)

    tok = AutoTokenizer.from_pretrained(tiny_base)
    assert config["vocab_size"] == len(tok) <= 300
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rated output?"}]
    text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert (
        text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nRated output?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # The ChatML markers are single special tokens, and generation stops at the end-of-turn one.
    assert [len(tok(t, add_special_tokens=False)["input_ids"]) for t in ("<|im_start|>", "<|im_end|>")] == [1, 1]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"


def test_tokenizer_round_trips_text_with_characters_the_corpus_never_had(tiny_base):
    from transformers import AutoTokenizer

    text = "Größe: 24 kW — Ω ≥ 3 µF, 東京 😀 naïve\ttab"
    corpus = json.dumps(TINY_BLOCKS, ensure_ascii=False)
    assert not [ch for ch in "Ω≥µ東京😀ï" if ch in corpus]  # so only byte-level coverage can encode them
    tok = AutoTokenizer.from_pretrained(tiny_base)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.unk_token_id is None or tok.unk_token_id not in ids


def test_two_builds_from_the_same_inputs_are_byte_identical(tmp_path, tiny_base, tiny_blocks_file, small_params):
    result, again = build(tmp_path, tiny_blocks_file, small_params)
    assert_ok(result)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_base / name).read_bytes(), name


def test_model_tiny_seed_decides_the_initial_weights(tmp_path, tiny_base, tiny_blocks_file, small_params):
    small_params["model"]["tiny"]["seed"] = 1
    result, other = build(tmp_path, tiny_blocks_file, small_params)
    assert_ok(result)
    assert (other / "model.safetensors").read_bytes() != (tiny_base / "model.safetensors").read_bytes()


def test_pretraining_moves_the_weights_away_from_the_initialisation(
    tmp_path, tiny_base, tiny_blocks_file, small_params
):
    small_params["model"]["tiny"]["pretrain_steps"] = 0
    result, untrained = build(tmp_path, tiny_blocks_file, small_params)
    assert_ok(result)
    assert (untrained / "model.safetensors").read_bytes() != (tiny_base / "model.safetensors").read_bytes()


def test_a_local_model_directory_is_copied_with_its_chat_template(tmp_path, tiny_base, tiny_blocks_file, small_params):
    from transformers import AutoTokenizer

    small_params["model"]["name"] = str(tiny_base)
    result, copied = build(tmp_path, tiny_blocks_file, small_params)
    assert_ok(result)
    assert (copied / "model.safetensors").exists()
    assert (
        AutoTokenizer.from_pretrained(copied).chat_template == AutoTokenizer.from_pretrained(tiny_base).chat_template
    )


@pytest.fixture
def pickled_model(tmp_path, tiny_base):
    """The tiny base with its weights as a pickled pytorch_model.bin instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    path = tmp_path / "pickled"
    shutil.copytree(tiny_base, path)
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    return path


def test_check_safetensors_refuses_a_directory_with_only_pickled_weights(pickled_model):
    with pytest.raises(InputError, match=r"only pickled \.bin weights"):
        check_safetensors(pickled_model)


def test_check_safetensors_accepts_safetensors_and_rejects_a_missing_directory(tmp_path, tiny_base):
    check_safetensors(tiny_base)
    with pytest.raises(InputError, match="model directory not found"):
        check_safetensors(tmp_path / "missing")


def test_load_base_refuses_pickled_weights(pickled_model, small_params):
    with pytest.raises(InputError, match=r"\.bin"):
        load_base(pickled_model, typed(small_params).model)


def test_base_refuses_to_fetch_a_model_with_only_pickled_weights(
    tmp_path, pickled_model, tiny_blocks_file, small_params
):
    small_params["model"]["name"] = str(pickled_model)
    result, out = build(tmp_path, tiny_blocks_file, small_params)
    assert isinstance(result.exception, InputError)
    assert "params.yaml" in str(result.exception) and "could not be loaded" in str(result.exception)
    assert not out.exists()


@pytest.mark.parametrize(
    "blocks, said",
    [
        ([], "no blocks: extract kept nothing"),
        (TINY_BLOCKS[:1], "the corpus is too small to pretrain the tiny base"),
    ],
)
def test_a_corpus_too_small_for_the_tiny_base_stops_with_one_line_saying_what_is_needed(
    tmp_path, small_params, blocks, said
):
    from finetune.io import write_jsonl

    blocks_file = tmp_path / "blocks.jsonl"
    write_jsonl(blocks_file, blocks)
    result, out = build(tmp_path, blocks_file, small_params)
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    message = str(result.exception)
    assert message.startswith(f"{blocks_file}: {said}") and "\n" not in message
    assert not out.exists()
