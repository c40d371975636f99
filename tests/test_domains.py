"""Several domains in one repository, with the real `dvc`: each domain's pipeline runs once per `dvc repro`, a change
to one domain reruns that domain (and the cross-domain check) and nothing of the others, a chain of two domains
retrains in order, an experiment on one domain's params touches that domain only, and a teammate can pull one
domain without the others. Every adapter loads into one PEFT model and answers as its own evaluate stage did.

One FAST run of two small sample domains, cli_tool and skein_howto (which goes on from cli_tool's adapter), serves
every test; each test that changes something works in its own copy of it. (tests/test_pipeline.py runs heating.)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from finetune.io import load_jsonl
from tests.conftest import slow_fixture
from tests.dvcrepo import FAST, PER_DOMAIN, at, copy_repo, copy_run, ran_stages, sh

DOMAINS = {
    "cli_tool": {"init_from": "base"},
    "skein_howto": {"init_from": "cli_tool"},
}
AFTER_TRAIN = ("train", "evaluate", "report", "interference")
HEADLINES = r"Experiment|\w+\.rouge_l(_base)?$"  # docs/experiments.md: every domain's headline, side by side


@slow_fixture(scope="session")
def domains_run(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("domains") / "repo", FAST, domains=DOMAINS)
    out = sh(["dvc", "repro"], repo).stdout
    assert ran_stages(out) == {"base", "compare", *(f"{s}@{d}" for s in PER_DOMAIN for d in DOMAINS)}, out
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "repro"], repo)
    return repo


def copy(domains_run, tmp_path) -> Path:
    return copy_run(domains_run, tmp_path / "repo")


def set_domains(repo: Path, domains: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["domains"] = domains
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def new_domain(folder: Path) -> None:
    """A domain added as the README says: its documents (eight short sections of our own), then cli_tool's task
    file and params to start from, and no questions of its users yet."""
    (folder / "raw").mkdir(parents=True)
    sections = [
        f"## Board {n}\n\nBoard {n} carries {n + 2} connectors and runs from a {n + 3} volt supply. Its status light "
        f"blinks {n} times at start-up, and its fuse is rated {n * 100} milliamperes for the whole board.\n"
        for n in range(1, 9)
    ]
    (folder / "raw" / "boards.md").write_text("# Board notes\n\n" + "\n".join(sections))
    for name in ("tasks.yaml", "params.yaml"):
        shutil.copy(folder.parents[1] / "domains/cli_tool" / name, folder / name)
    (folder / "questions.yaml").write_text("questions: []\n")  # none yet: evaluate scores val alone


def test_each_domain_gets_its_adapter_over_the_one_shared_base(domains_run):
    for domain in DOMAINS:
        assert (domains_run / "models" / domain / "adapter_config.json").is_file(), domain
        assert (domains_run / "reports" / domain / "index.html").is_file(), domain
    assert sorted(p.name for p in (domains_run / "models").iterdir() if (p / "config.json").is_file()) == ["base"]
    shown = json.loads(sh(["dvc", "metrics", "show", "--json", "metrics/compare.json"], domains_run).stdout)
    compared = json.loads((domains_run / "metrics/compare.json").read_text())
    (workspace,) = shown.values()
    assert workspace["data"]["metrics/compare.json"]["data"]["cli_tool"]["rouge_l"] == compared["cli_tool"]["rouge_l"]
    assert set(compared) == set(DOMAINS)
    for domain, row in compared.items():
        assert {"rouge_l", "rouge_l_base"} <= set(row)
        assert set(row["on"]) == set(DOMAINS) - {domain}  # the interference check: every other domain
    assert "| skein_howto | cli_tool |" in (domains_run / "reports/compare.md").read_text()


@pytest.mark.slow  # the real dvc, in a fresh copy
def test_one_domain_builds_alone_and_a_chain_builds_its_first_stage_first(tmp_path):
    repo = copy_repo(tmp_path / "fresh", FAST, domains=DOMAINS)
    dag = sh(["dvc", "dag", "--dot", "train@skein_howto"], repo).stdout  # what `dvc repro train@skein_howto` runs
    upstream = ("extract", "generate", "balance", "validate", "train")
    assert set(re.findall(r'^"([\w@-]+)";$', dag, re.M)) == {"base"} | at("cli_tool", *upstream) | at(
        "skein_howto", *upstream
    )
    assert '"train@cli_tool" -> "train@skein_howto"' in dag  # the chain: the first stage's adapter first


def test_adding_and_removing_a_domain_reruns_nothing_of_the_others(domains_run, tmp_path):
    repo = copy(domains_run, tmp_path)
    new_domain(repo / "domains/boards")  # a new domain: a folder …
    set_domains(repo, {"cli_tool": DOMAINS["cli_tool"], "boards": {"init_from": "base"}})
    out = sh(["dvc", "repro"], repo).stdout  # … named in params.yaml; and skein_howto is gone from it
    # The new domain's whole pipeline; of cli_tool only the cross-domain check, which reads every val set.
    assert ran_stages(out) == at("boards", *PER_DOMAIN) | {"interference@cli_tool", "compare"}, out
    assert set(json.loads((repo / "metrics/compare.json").read_text())) == {"cli_tool", "boards"}


def test_new_data_for_the_first_stage_of_a_chain_retrains_the_chain_and_nothing_else(domains_run, tmp_path):
    repo = copy(domains_run, tmp_path)
    page = repo / "domains/cli_tool/raw/add.md"
    # An option's text: a short example that no cap or length limit of the test's sizes leaves out.
    page.write_text(page.read_text().replace("and change nothing.", "and change nothing at all."))
    ran = ran_stages(sh(["dvc", "repro"], repo).stdout)
    # The first stage's train and the chain after it; baseline only where the edit reached val; not the base.
    assert {"extract@cli_tool", "train@cli_tool", "train@skein_howto", "evaluate@skein_howto"} <= ran
    assert ran <= at("cli_tool", *PER_DOMAIN) | at("skein_howto", *AFTER_TRAIN) | {"compare"}


def test_an_experiment_on_one_domains_params_reruns_that_domain_only(domains_run, tmp_path):
    repo = copy(domains_run, tmp_path)
    # `++` adds the key where the domain's section does not hold it yet, and overrides it where it does.
    out = sh(["dvc", "exp", "run", "-S", "domains/skein_howto/params.yaml:++train.learning_rate=0.001"], repo).stdout
    # train reruns; what follows reruns where its inputs changed (outputs hold no timing, so the same answers give
    # the same bytes and DVC rightly stops there), and never in another domain.
    ran = ran_stages(out)
    assert "train@skein_howto" in ran and ran <= at("skein_howto", *AFTER_TRAIN) | {"compare"}, out
    assert "learning_rate: 0.001" in (repo / "domains/skein_howto/params.yaml").read_text()
    # Every domain's headline side by side, under column names a person reads.
    header = sh(["dvc", "exp", "show", "--csv", "--drop", ".*", "--keep", HEADLINES], repo).stdout
    columns = header.splitlines()[0].split(",")
    assert {f"{d}.rouge_l" for d in DOMAINS} | {f"{d}.rouge_l_base" for d in DOMAINS} <= set(columns), columns


def test_a_teammate_pulls_one_domain_and_its_repro_is_a_no_op(domains_run, tmp_path):
    remote = tmp_path / "remote"
    a = copy(domains_run, tmp_path)
    sh(["dvc", "remote", "add", "-d", "team", str(remote)], a)
    sh(["git", "commit", "-qam", "remote"], a)
    sh(["dvc", "push"], a)
    b = tmp_path / "b"
    sh(["git", "clone", "-q", str(a), str(b)], tmp_path)
    sh(["dvc", "pull", "--with-deps", "report@cli_tool"], b)
    assert (b / "models/cli_tool/adapter_model.safetensors").is_file()
    assert not (b / "models/skein_howto").exists() and not (b / "data/processed/skein_howto/val.jsonl").exists()
    out = sh(["dvc", "repro", "report@cli_tool"], b).stdout
    assert ran_stages(out) == set(), out


def test_every_adapter_loads_into_one_model_and_answers_as_its_evaluate_stage_did(domains_run):
    from finetune.evaluation.predict import predict
    from finetune.generation.taskfile import load
    from finetune.params import load_params
    from finetune.training.models import load_adapter, load_base, load_tokenizer

    root = domains_run
    params = {d: load_params([root / "params.yaml", root / "domains" / d / "params.yaml"]) for d in DOMAINS}
    first, *others = DOMAINS
    model = load_adapter(load_base(root / "models/base", params[first].model), root / "models" / first, first)
    for domain in others:
        model.load_adapter(str(root / "models" / domain), adapter_name=domain)
    for domain, p in params.items():
        model.set_adapter(domain)
        val = load_jsonl(root / "data/processed" / domain / "val.jsonl")
        tokenizer = load_tokenizer(root / "models" / domain)
        rows, _ = predict(
            model, tokenizer, val, p.eval, p.generate.refusal, domain, load(root / "domains" / domain / "tasks.yaml")
        )
        evaluated = load_jsonl(root / "data/eval" / domain / "finetuned_predictions.jsonl")
        same = sum(r["prediction"] == e["prediction"] for r, e in zip(rows, evaluated, strict=True))
        # evaluate merges the adapter into the weights; unmerged, the sums run in another order, and greedy decoding
        # may part ways on a near tie.
        assert same >= 0.9 * len(rows), (domain, same, len(rows))
