"""A domain's params.yaml overrides the repository's key by key; what it may not set, and what it sets wrong, is
one line naming the domain's file."""

from __future__ import annotations

import pytest
import yaml

from finetune.io import InputError
from finetune.params import load_params
from tests.conftest import REPO

ROOT = REPO / "params.yaml"


def domain_file(tmp_path, data) -> str:
    path = tmp_path / "domain.yaml"
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data, encoding="utf-8")
    return str(path)


def test_a_domain_overrides_one_key_and_keeps_the_rest_of_the_section(tmp_path):
    root = load_params(ROOT)
    p = load_params([ROOT, domain_file(tmp_path, {"lora": {"r": 64}, "generate": {"refusal": "Only ovens."}})])
    assert p.lora.r == 64 and p.lora.alpha == root.lora.alpha
    assert p.generate.refusal == "Only ovens." and p.generate.tasks == root.generate.tasks


def test_empty_sections_change_nothing(tmp_path):
    empty = {s: {} for s in ("extract", "generate", "balance", "split", "validate", "quant", "lora", "train", "eval")}
    assert load_params([ROOT, domain_file(tmp_path, empty)]) == load_params(ROOT)


def test_every_sample_domain_loads_with_its_own_system_prompt_and_refusal():
    domains = load_params(ROOT).domains
    assert set(domains) >= {"heating", "cli_tool", "datasheets", "skein_howto"}
    loaded = {d: load_params([ROOT, REPO / "domains" / d / "params.yaml"]).generate for d in domains}
    assert len({g.system_prompt for g in loaded.values()}) == len(domains)
    assert loaded["skein_howto"].refusal == loaded["cli_tool"].refusal  # two stages of one assistant
    assert loaded["heating"].tasks[0] == "TERMINOLOGY" and "TERMINOLOGY" not in loaded["cli_tool"].tasks
    assert domains["skein_howto"].init_from == "cli_tool"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lora": {"rr": 8}}, "lora.rr is not a key of lora (did you mean r?)"),
        ({"train": {"epochs": "many"}}, "train.epochs: "),
        ({"model": {"max_seq_len": 1024}}, "model is shared by every domain: set it in "),
        ({"domains": {"x": {"init_from": "base"}}}, "domains is shared by every domain"),
        ("[1, 2]", "expected a mapping of sections"),
    ],
)
def test_a_bad_domain_file_is_one_line_naming_it(tmp_path, data, message):
    path = domain_file(tmp_path, data)
    with pytest.raises(InputError) as e:
        load_params([ROOT, path])
    assert str(e.value).startswith(path) and message in str(e.value)


@pytest.mark.parametrize(
    "domains, message",
    [
        ({"base": {"init_from": "base"}}, "domains.base: a domain name is a folder name"),
        ({"Heating Docs": {"init_from": "base"}}, "domains.Heating Docs: a domain name is a folder name"),
        ({"a": {"init_from": "b"}}, "domains.a.init_from: 'b' is neither base nor a domain"),
        ({"a": {}}, "domains.a.init_from is missing"),
        ({"a": {"init_from": "a"}}, "domains.a.init_from: a cycle, a -> a"),
        ({"a": {"init_from": "b"}, "b": {"init_from": "a"}}, "domains.a.init_from: a cycle, a -> b -> a"),
    ],
)
def test_the_list_of_domains_is_checked_where_it_is_written(tmp_path, domains, message):
    data = yaml.safe_load(ROOT.read_text(encoding="utf-8"))
    data["domains"] = domains
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_params(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value)
