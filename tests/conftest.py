"""Shared fixtures: params shrunk for tests, a tiny corpus of blocks, and a tiny base model and adapter built once.

The model is a one-layer Llama of about 60 k parameters, so building, training and evaluating it takes seconds on
2 CPU cores. Test-size params for the real `dvc repro` copies (SMALL, TENTH, FAST) are in tests/dvcrepo.py, built on SHRUNK.
"""

from __future__ import annotations

import contextlib
import copy
import os

# pytest-xdist runs the suite on one worker per core (pyproject's addopts). Each worker's torch, and every `finetune`
# process its `dvc` starts, gets an equal share of the cores: two workers of two torch threads each on 2 cores
# oversubscribe them, and a contended OpenMP spin-waits. Before anything imports torch.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner, Result

from finetune.documents.sections import block
from finetune.io import load_jsonl, write_jsonl
from finetune.params import Params, overlay, parse

# No test may reach the network: with these set, the hub clients fail at once instead of trying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]

# transformers gives its logger a handler on whatever sys.stderr is when it first logs; inside Click's CliRunner that
# is a captured stream, closed afterwards, and a later test's transformers warning then prints "--- Logging error ---"
# with a traceback. Configure it now, on the session's stderr.
transformers_logging = __import__("transformers.utils.logging", fromlist=["get_logger"])
transformers_logging.get_logger("transformers")
# The sample domain whose tasks most tests exercise: its own conventions (catalog columns, heading words) plus the
# generic tasks.
HEATING_DIR = REPO / "domains" / "heating"
HEATING_TASKS = HEATING_DIR / "tasks.yaml"

# Test-size params, as overrides of params.yaml merged in by `merge`. What every test run shares: the narrowest Llama
# that bitsandbytes' CPU 4-bit kernels take (they pack the input features of every Linear layer in blocks of 64, so
# hidden_size 32 fails inside bitsandbytes), one epoch, short answers.
SHRUNK = {
    "model": {
        "tiny": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        }
    },
    "train": {"epochs": 1},
    "eval": {"max_new_tokens": 16},
}


def merge(base: dict, override: dict) -> dict:
    """A deep copy of `base` with `override` merged in, nested dicts key by key: the result shares nothing with either,
    so a test may change it freely."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# In-process tests on TINY_BLOCKS (a dozen examples): seconds per build, train or evaluation.
TINY = merge(
    SHRUNK,
    {
        "model": {
            "tiny": {
                "vocab_size": 300,  # 256 byte symbols + 3 special tokens + ~40 merges
                "seed": 0,
                "pretrain_steps": 5,  # 5 steps x 4 windows x 128 tokens: enough to exercise pretraining, not to learn
                "pretrain_batch_size": 4,
                "pretrain_lr": 0.003,
            }
        },
        "train": {
            "per_device_train_batch_size": 4,  # 12 examples: 3 optimiser steps
            "eval_strategy": "epoch",
            "warmup_steps": 0,
            "logging_steps": 1,
        },
        "eval": {"batch_size": 8},
    },
)

HEATING = "Brenntal Service Manual — Heating / Calora gas condensing boilers"
CALORA_NAMES = "calora combi 20;Brenntal Kombitherme 20 kW;20kW Brenntal gas combi;ca20c boiler"

# One or two blocks for every task of tasks.yaml's sample part, shaped like extract's output for the sample corpus
# (block kinds as in finetune/schema.py; Markdown and PDF titles).
TINY_BLOCKS = [
    block(
        "domains/heating/raw/catalog.csv#row=1",
        "row",
        "Brenntal Calora CA-20C combi boiler",
        f"model_code: CA-20C\nname: Brenntal Calora CA-20C combi boiler\nrating: 20\nunit: kW\n{CALORA_NAMES}",
        columns=["model_code", "family", "name", "rating", "unit", "informal_names"],
        rows=[
            {
                "model_code": "CA-20C",
                "family": "Calora",
                "name": "Brenntal Calora CA-20C combi boiler",
                "rating": "20",
                "unit": "kW",
                "informal_names": CALORA_NAMES,
            }
        ],
    ),
    block(
        "domains/heating/raw/catalog.csv#row=2",
        "row",
        "Brenntal Aquis AQ-200 hot-water cylinder",
        "model_code: AQ-200\nname: Brenntal Aquis AQ-200 hot-water cylinder\nrating: 200\nunit: l",
        columns=["model_code", "family", "name", "rating", "unit", "informal_names"],
        rows=[
            {
                "model_code": "AQ-200",
                "family": "Aquis",
                "name": "Brenntal Aquis AQ-200 hot-water cylinder",
                "rating": "200",
                "unit": "l",
                "informal_names": "aquis 200 tank; Warmwasserspeicher 200 Liter",
            }
        ],
    ),
    block(
        "domains/heating/raw/manual.md#h=Calora/Specifications — CA-24C",
        "table",
        f"{HEATING} / Specifications — CA-24C",
        "Rated output: 24 kW\nWeight: 32 kg\nGas inlet pressure: 20 mbar",
        columns=["Parameter", "Value", "Unit"],
        rows=[
            {"Parameter": "Rated output", "Value": "24", "Unit": "kW"},
            {"Parameter": "Weight", "Value": "32", "Unit": "kg"},
            {"Parameter": "Gas inlet pressure", "Value": "20", "Unit": "mbar"},
        ],
    ),
    block(
        "domains/heating/raw/manual.pdf#page=3",
        "table",
        "Aquis / Specifications / AQ-200",
        "Nominal volume: 200 l\nMaximum operating pressure: 10 bar",
        columns=["Parameter", "Value", "Unit"],
        rows=[
            {"Parameter": "Nominal volume", "Value": "200", "Unit": "l"},
            {"Parameter": "Maximum operating pressure", "Value": "10", "Unit": "bar"},
        ],
    ),
    block(
        "domains/heating/raw/manual.md#h=Calora/Procedure — Annual service",
        "list",
        f"{HEATING} / Procedure — Annual service",
        "1. Isolate the gas and electrical supplies.\n2. Clean the burner with the brush.\n3. Check the flue seals.",
        items=[
            "Isolate the gas and electrical supplies.",
            "Clean the burner with the brush.",
            "Check the flue seals.",
        ],
    ),
    block(
        "domains/heating/raw/manual.pdf#page=5",
        "list",
        "Aquis / Procedure / Inspecting the magnesium anode",
        "1. Close the cold-water inlet.\n2. Drain two litres from the cylinder.\n3. Unscrew and measure the anode.",
        items=["Close the cold-water inlet.", "Drain two litres from the cylinder.", "Unscrew and measure the anode."],
    ),
    block(
        "domains/heating/raw/manual.md#h=Calora/Explanation — Why condensing saves gas",
        "section",
        f"{HEATING} / Explanation — Why condensing saves gas",
        "A condensing boiler cools its flue gas below the dew point. The water vapour condenses and releases its "
        "latent heat into the heating water, so less gas is burnt for the same output.",
    ),
    block(
        "domains/heating/raw/manual.md#h=Brenntal Service Manual — Heating",
        "section",
        "Brenntal Service Manual — Heating",
        "This manual covers the Calora boilers. Work on gas appliances may only be done by a registered engineer.",
    ),
    block(
        "domains/heating/raw/manual.md#h=Calora/Wiring — External controls",
        "section",
        f"{HEATING} / Wiring — External controls",
        "- Terminal X4 pins 1-2: room thermostat, volt-free.\n- Terminal X5: 230 V supply, fused at 3 A.",
        items=["Terminal X4 pins 1-2: room thermostat, volt-free.", "Terminal X5: 230 V supply, fused at 3 A."],
    ),
    block(
        "domains/heating/raw/manual.md#h=Calora/Troubleshooting — CA-24C",
        "table",
        f"{HEATING} / Troubleshooting — CA-24C",
        "Symptom: F22 low pressure; Cause: Leak or air in the system; Remedy: Top up to 1.5 bar and bleed\n"
        "Symptom: F28 no ignition; Cause: Gas supply closed; Remedy: Open the gas valve and reset",
        columns=["Symptom", "Cause", "Remedy"],
        rows=[
            {
                "Symptom": "F22 low pressure",
                "Cause": "Leak or air in the system",
                "Remedy": "Top up to 1.5 bar and bleed",
            },
            {"Symptom": "F28 no ignition.", "Cause": "Gas supply closed", "Remedy": "Open the gas valve and reset"},
        ],
    ),
    block(
        "domains/heating/raw/qa.jsonl#line=1",
        "qa",
        "What's the difference between the CA-24C and the CA-24S?",
        "user: What's the difference between the CA-24C and the CA-24S?\nassistant: The CA-24C is a combi boiler.",
        messages=[
            {"role": "user", "content": "What's the difference between the CA-24C and the CA-24S?"},
            {"role": "assistant", "content": "The CA-24C is a combi boiler; the CA-24S is a system boiler."},
        ],
    ),
    block(
        "domains/heating/raw/qa.jsonl#line=2",
        "qa",
        "Kann ich den Aquis-Speicher mit einer Wärmepumpe betreiben?",
        "user: Kann ich den Aquis-Speicher mit einer Wärmepumpe betreiben?\nassistant: Ja, mit dem AQ-300.",
        messages=[
            {"role": "system", "content": "Imported."},
            {"role": "user", "content": "Kann ich den Aquis-Speicher mit einer Wärmepumpe betreiben?"},
            {"role": "assistant", "content": "Ja, der AQ-300 hat eine große Wärmetauscherfläche dafür."},
        ],
    ),
]
# As extract writes them: a document block's heading path is its title's parts; a CSV row or a Q&A line has its file.
for _b in TINY_BLOCKS:
    if _b["kind"] not in ("row", "qa"):
        _b["headings"] = _b["title"].split(" / ")


def domain_params(name: str) -> dict:
    """A domain's params as plain data: params.yaml overlaid with domains/<name>/params.yaml, as dvc.yaml gives them
    to its stages."""
    root = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    return overlay(root, yaml.safe_load((REPO / "domains" / name / "params.yaml").read_text(encoding="utf-8")))


def repo_params() -> dict:
    """The heating domain's params as plain data: params.yaml overlaid with domains/heating/params.yaml, as dvc.yaml
    gives them to its stages; for a test to change and write out (typed() checks and types it)."""
    return domain_params(HEATING_DIR.name)


def row_labels(params: dict | None = None):
    """The row conventions extract builds from params (the heating domain's by default): how a corpus writes table
    rows as lines of a page."""
    from finetune.documents.pages import RowLabels

    e = (params or repo_params())["extract"]
    return RowLabels.from_lists(e["labelled_rows"], e["key_value_columns"], e["key_value_headings"])


def typed(params: dict) -> Params:
    """Plain params as the typed object every command gets from params.yaml, validated the same way."""
    return parse(params)


def shrink(params: dict) -> dict:
    """The repo's params with the model, training and evaluation cut down to test size; the rest as in the repo."""
    return merge(params, TINY)


def params_file(path: Path, overrides: dict | None = None) -> Path:
    """The repo's params.yaml with `overrides` (nested, only the keys that change) merged in, written to `path`."""
    return write_params(path, merge(repo_params(), overrides or {}))


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def invoke(command, args) -> Result:
    """Run a stage's click command in-process; exceptions stay on the result for the test to inspect."""
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=True)


def assert_ok(result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output


# `pytest -m "not slow"` is the quick loop (under a minute on 2 cores). A fixture that runs the real `dvc`, trains a
# model or starts a model server is declared with @slow_fixture, and every test using it, directly or through other
# fixtures, is marked slow at collection; a test that does such work itself carries @pytest.mark.slow.
SLOW_FIXTURES: set[str] = set()


def slow_fixture(scope: str = "function"):
    """pytest.fixture(scope=scope), and every test that uses the fixture is marked slow."""

    def declare(function):
        SLOW_FIXTURES.add(function.__name__)
        return pytest.fixture(scope=scope)(function)

    return declare


# The session fixtures too costly to build twice, longest first: every test that uses one, directly or through
# another fixture, runs on the same xdist worker (`--dist loadgroup`); any other test runs beside the rest of its
# module, which keeps a module-scoped fixture to one worker too. Their tests come first (pyproject: no reordering by
# size), so the two longest runs start at once on the two workers of a 2-core machine and the rest fills in.
SHARED_RUNS = ("domains_run", "pipeline_run", "trained")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    rank = {run: i for i, run in enumerate(SHARED_RUNS)}
    order = {}
    for item in items:
        names = getattr(item, "fixturenames", ())
        if SLOW_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.slow)
        group = next((run for run in SHARED_RUNS if run in names), item.nodeid.split("::")[0])
        item.add_marker(pytest.mark.xdist_group(group))
        order[item.nodeid] = rank.get(group, len(SHARED_RUNS))
    items.sort(key=lambda item: order[item.nodeid])


# Whether the test being set up is marked slow; tests.dvcrepo.sh refuses to run `dvc` when it is not, so a test (or
# fixture) that runs the real pipeline without the mark fails at once instead of quietly slowing the quick loop.
CURRENT = {"slow": True}


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures are set up: they run dvc too
def pytest_runtest_setup(item):
    CURRENT["slow"] = item.get_closest_marker("slow") is not None


@pytest.fixture
def small_params() -> dict:
    """A fresh copy of the shrunk params for a test to modify."""
    return shrink(repo_params())


@pytest.fixture(scope="session")
def tiny_blocks_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "blocks.jsonl"
    write_jsonl(path, TINY_BLOCKS)
    return path


@pytest.fixture(scope="session")
def session_params_file(tmp_path_factory) -> Path:
    return write_params(tmp_path_factory.mktemp("params") / "params.yaml", shrink(repo_params()))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tiny_blocks_file, session_params_file) -> Path:
    """models/base as `finetune base` builds it from the tiny corpus with the tiny model params."""
    from stages.base import cli

    out = tmp_path_factory.mktemp("models") / "base"
    assert_ok(invoke(cli, ["--blocks", tiny_blocks_file, "--output", out, "--params", session_params_file]))
    return out


@pytest.fixture(scope="session")
def tiny_splits(tmp_path_factory, session_params_file) -> SimpleNamespace:
    """val.jsonl: the first example of every task; train.jsonl: 12 of the others, taken from the tasks in turn."""
    from finetune.generation.examples import run
    from finetune.generation.taskfile import load

    examples = run(TINY_BLOCKS, typed(yaml.safe_load(session_params_file.read_text())).generate, load(HEATING_TASKS))
    by_task: dict[str, list[dict]] = {}
    for e in examples:
        by_task.setdefault(e["task"], []).append(e)
    val = [group[0] for group in by_task.values()]
    rest = [group[1:] for group in by_task.values()]
    train = []
    while len(train) < 12 and any(rest):
        for group in rest:
            if group and len(train) < 12:
                train.append(group.pop(0))
    root = tmp_path_factory.mktemp("processed")
    write_jsonl(root / "train.jsonl", train)
    write_jsonl(root / "val.jsonl", val)
    return SimpleNamespace(train=root / "train.jsonl", val=root / "val.jsonl", tasks=sorted(by_task))


@slow_fixture(scope="session")
def trained(tmp_path_factory, tiny_base, tiny_splits, session_params_file) -> SimpleNamespace:
    """One `finetune train` run on the tiny base, shared by the train and evaluate tests.

    It starts where `dvc repro` after a params change would: the persistent checkpoints folder still holds a
    checkpoint of an earlier run (stamped with another fingerprint) and the DVCLive folder that run's curve.
    `finetune.training.models.load_for_training` is wrapped so the tests can inspect the very model the trainer
    trained.
    """
    import finetune.training.models
    from stages.train import cli

    root = tmp_path_factory.mktemp("train")
    checkpoints, live = root / "models" / "checkpoints", root / "metrics" / "train"
    stale = checkpoints / "checkpoint-99"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text('{"global_step": 99}')  # resuming from it would crash
    (checkpoints / "run.json").write_text('{"fingerprint": "of-another-run"}\n')
    old_curve = live / "plots" / "metrics" / "loss.tsv"
    old_curve.parent.mkdir(parents=True)
    old_curve.write_text("step\tloss\n99\t9.99\n")

    loaded = []
    real_load = finetune.training.models.load_for_training

    def spy(path, model_params, quant):
        model = real_load(path, model_params, quant)
        loaded.append(SimpleNamespace(path=Path(path), quant=quant, model=model))
        return model

    args = ["--train", tiny_splits.train, "--val", tiny_splits.val, "--model", tiny_base]
    args += ["--output", root / "models" / "adapter", "--checkpoints", checkpoints]
    args += ["--metrics", root / "metrics" / "train.json", "--timing", root / "timing" / "train.json"]
    args += ["--live-dir", live, "--params", session_params_file]
    with pytest.MonkeyPatch.context() as mp, contextlib.chdir(root):  # DVCLive looks for a repo from the cwd
        mp.setattr(finetune.training.models, "load_for_training", spy)
        result = invoke(cli, args)
    assert_ok(result)
    return SimpleNamespace(
        result=result,
        adapter=root / "models" / "adapter",
        checkpoints=checkpoints,
        metrics=root / "metrics" / "train.json",
        timing=root / "timing" / "train.json",
        live=live,
        loaded=loaded,
        base=tiny_base,
        splits=tiny_splits,
        params_file=session_params_file,
        val=load_jsonl(tiny_splits.val),
    )


@slow_fixture(scope="session")
def fast_run(tmp_path_factory, pipeline_run) -> Path:
    """The shared pipeline run, copied and committed: where the experiments and sharing tests start, each in its own
    copy of it (tests.dvcrepo.copy_run). A tenth of an epoch retrains in seconds, so no run of its own is needed."""
    from tests.dvcrepo import copy_run, sh

    repo = copy_run(pipeline_run.repo, tmp_path_factory.mktemp("fast") / "repo")
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "repro"], repo)
    return repo


@slow_fixture(scope="session")
def pipeline_run(tmp_path_factory) -> SimpleNamespace:
    """The one real `dvc repro` of the whole pipeline that the tests reading its results share (test_pipeline,
    test_concurrency, test_secrets, test_docs): small params, fake credentials planted in the environment, the
    optional teacher LLM on a local server (up for the whole session, so a test may rerun generate in a copy), and a
    second `dvc repro` started while train runs. Fields: tests.dvcrepo.concurrent_repro."""
    from tests.dvcrepo import concurrent_repro
    from tests.serving import FaultServer

    # It echoes each question, and generate drops a paraphrase identical to its question: the data stays as it was.
    with FaultServer(answer=lambda prompt: prompt) as teacher:
        yield concurrent_repro(tmp_path_factory.mktemp("pipeline"), teacher)
