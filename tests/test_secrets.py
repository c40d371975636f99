"""Secrets stay in the environment, and model files never run code we did not ask for.

Credentials (HF_TOKEN, OPENAI_API_KEY, the teacher/endpoint key named by `api_key_env`) are read from the environment
only: a whole `dvc repro` with fake ones planted writes none of them to any output, cache, lock file or log.
Models load from safetensors only (a pickled .bin can run code when unpickled) and with trust_remote_code false
unless params.yaml says otherwise, and each refusal is one line saying why.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from finetune.cli import main
from finetune.training.models import load_base, load_tokenizer
from tests.conftest import REPO, typed, write_params
from tests.dvcrepo import PLANTED

MARKER = "FAKEplanted"  # in every planted value: finds a secret that leaked cut short or re-encoded


def files_under(root: Path):
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


# --- secrets ----------------------------------------------------------------------------------------------------


def test_the_planted_secrets_reached_the_stages(pipeline_run):
    # Without this the scan below could pass only because the secrets never got to the code under test.
    assert {k: pipeline_run.stage_env.get(k) for k in PLANTED} == PLANTED
    assert pipeline_run.teacher_auth and set(pipeline_run.teacher_auth) == {f"Bearer {PLANTED['TEACHER_API_KEY']}"}


def test_no_output_cache_lock_file_or_log_holds_a_planted_secret(pipeline_run):
    scanned = {p.relative_to(pipeline_run.repo).as_posix() for p in files_under(pipeline_run.repo)}
    # Where a leak would most likely be: the curves (DVCLive once dumped TrainingArguments there, hub_token and all;
    # train now logs curves only), the adapter's card and config, the base's tokenizer and config, the teacher's
    # answer cache, dvc.lock, DVC's cache and tmp.
    for expected in [
        "params.yaml",
        "dvc.lock",
        "metrics/curves/heating/plots/metrics/loss.tsv",
        "metrics/train/heating.json",
        "models/heating/README.md",
        "models/heating/adapter_config.json",
        "models/base/config.json",
        "models/base/tokenizer_config.json",
        "reports/heating/eval.md",
        "data/eval/heating/finetuned_predictions.jsonl",
    ]:
        assert expected in scanned, expected
    for prefix in ("data/interim/teacher_cache/", ".dvc/cache/", ".dvc/tmp/", "reports/heating/validation/", ".git/"):
        assert any(s.startswith(prefix) for s in scanned), prefix

    leaks = []
    # The copy's tests/ is this repository's source (these very files hold the planted values), not an output.
    outputs = [
        p
        for p in files_under(pipeline_run.repo)
        if not p.relative_to(pipeline_run.repo).as_posix().startswith("tests/")
    ]
    for path in [*outputs, *files_under(pipeline_run.logs)]:
        data = path.read_bytes()
        leaks += [f"{path}: {name}" for name, value in PLANTED.items() if value.encode() in data]
        if MARKER.encode() in data:
            leaks.append(f"{path}: {MARKER}")
    for stream in (pipeline_run.second.stdout, pipeline_run.second.stderr):
        leaks += [f"second repro's output: {name}" for name, value in PLANTED.items() if value in stream]
    assert not leaks, "\n".join(leaks)


def secret_keys(node, path=""):
    """(dotted key, value) of every params entry whose name says it holds a credential."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from secret_keys(v, f"{path}.{k}" if path else str(k))
    elif re.search(r"(^|[._])(token|api_key|key|secret|password|auth)(_env)?$", path.lower()):
        yield path, node


def test_params_name_environment_variables_never_credentials():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in secret_keys(params):
        # `api_key_env: OPENAI_API_KEY` names where the key is; anything else must be empty.
        assert key.endswith("_env") and re.fullmatch(r"[A-Z][A-Z0-9_]*", str(value)), (key, value)
    text = (REPO / "params.yaml").read_text()
    assert not re.search(r"\b(sk-[A-Za-z0-9]{8,}|hf_[A-Za-z0-9]{8,})", text)


# --- safe loading -----------------------------------------------------------------------------------------------


def finetune(args: list, capsys) -> tuple[int, list[str]]:
    """Run the `finetune` console script in-process; (exit code, the `error:` lines it printed)."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return exit_.value.code, [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def pickled_base(tmp_path, tiny_base) -> Path:
    """The tiny base with its weights only as a pickled pytorch_model.bin, as older hub repos ship them."""
    import torch
    from safetensors.torch import load_file

    path = tmp_path / "pickled"
    shutil.copytree(tiny_base, path)
    # transformers 5 ignores save_pretrained(safe_serialization=False), so the pickle is written directly.
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    return path


def test_base_refuses_a_model_directory_with_only_pickled_weights_and_says_why(
    tmp_path, pickled_base, tiny_blocks_file, small_params, capsys
):
    small_params["model"]["name"] = str(pickled_base)
    params = write_params(tmp_path / "params.yaml", small_params)
    out = tmp_path / "base"
    code, errors = finetune(["base", "--blocks", tiny_blocks_file, "--output", out, "--params", params], capsys)
    assert code == 1
    [error] = errors
    assert "model.name=" in error and "only pickled .bin weights" in error and "safetensors" in error, error
    assert not out.exists()


@pytest.mark.parametrize("stage", ["train", "baseline"])
def test_train_and_baseline_refuse_a_base_with_only_pickled_weights(
    stage, tmp_path, pickled_base, tiny_splits, session_params_file, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # train's DVCLive looks for a repository from the working directory
    if stage == "train":
        out = tmp_path / "adapter"
        args = ["train", "--train", tiny_splits.train, "--val", tiny_splits.val, "--model", pickled_base]
        args += ["--output", out, "--checkpoints", tmp_path / "ckpt", "--metrics", tmp_path / "train.json"]
        args += ["--live-dir", tmp_path / "live", "--params", session_params_file]
    else:
        out = tmp_path / "predictions.jsonl"
        args = ["baseline", "--model", pickled_base, "--val", tiny_splits.val, "--predictions", out]
        args += ["--scores", tmp_path / "scores.json", "--timing", tmp_path / "baseline.json"]
        args += ["--params", session_params_file]
        args += ["--tasks", REPO / "domains/heating/tasks.yaml"]  # its format checks; the cwd is tmp_path
    code, errors = finetune(args, capsys)
    assert code == 1
    refusal = f"{pickled_base}: only pickled .bin weights found; refusing to load them (they can run code)."
    assert errors == [f"error: {refusal} Convert to safetensors first."]
    assert not out.exists()


def with_custom_code(src: Path, dst: Path, model_type: str, marker: Path) -> Path:
    """A copy of a model directory whose config points the Auto classes at a custom.py that leaves `marker`."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"}
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "custom.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        f"class CustomConfig(LlamaConfig):\n    model_type = {model_type!r}\n"
        "class CustomModel(LlamaForCausalLM):\n    config_class = CustomConfig\n"
    )
    return dst


def test_base_refuses_a_model_that_needs_its_own_code_unless_trust_remote_code_is_set(
    tmp_path, tiny_base, tiny_blocks_file, small_params, capsys
):
    marker = tmp_path / "custom_code_ran"
    custom = with_custom_code(tiny_base, tmp_path / "custom", "brenntal_custom", marker)
    assert small_params["model"]["trust_remote_code"] is False  # the shipped default
    small_params["model"]["name"] = str(custom)
    params = write_params(tmp_path / "params.yaml", small_params)
    code, errors = finetune(
        ["base", "--blocks", tiny_blocks_file, "--output", tmp_path / "out", "--params", params], capsys
    )
    assert code == 1
    [error] = errors
    assert "model.trust_remote_code: true" in error, error
    assert not marker.exists()


def test_a_model_of_a_known_type_loads_with_the_built_in_class_and_its_custom_code_never_runs(
    tmp_path, tiny_base, small_params
):
    marker = tmp_path / "custom_code_ran"
    custom = with_custom_code(tiny_base, tmp_path / "custom", "llama", marker)
    model = load_base(custom, typed(small_params).model)
    load_tokenizer(custom, small_params["model"]["trust_remote_code"])
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not marker.exists()


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            yield owner, node.func.attr, {k.arg: k.value for k in node.keywords}


# The stage commands and the library they call, where the loading is.
SOURCES = sorted([*(REPO / "stages").glob("*.py"), *(REPO / "finetune").rglob("*.py")])


@pytest.mark.parametrize("module", SOURCES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_module_loads_weights_unsafely(module):
    """A guard for code written later: every weights load asks for safetensors, no call hard-codes
    trust_remote_code=True (it comes from params, default false), and torch.load only ever reads plain tensors."""
    for owner, attr, kw in calls(ast.parse(module.read_text(encoding="utf-8"))):
        where = f"{module.name}: {owner}.{attr}"
        if attr == "from_pretrained" and owner.startswith("AutoModel"):
            assert isinstance(kw.get("use_safetensors"), ast.Constant) and kw["use_safetensors"].value is True, where
        if "trust_remote_code" in kw:
            assert not (isinstance(kw["trust_remote_code"], ast.Constant) and kw["trust_remote_code"].value), where
        if (owner, attr) == ("torch", "load"):
            assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, where
    assert not re.search(r"^\s*(import pickle|from pickle)", module.read_text(encoding="utf-8"), re.MULTILINE), (
        module.name
    )
