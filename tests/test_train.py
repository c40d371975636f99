"""`finetune train`: a QLoRA adapter saved with its tokenizer and model card, the run's metrics and curves, and
checkpoints that only the run which wrote them may resume.

The training run itself is the session fixture `trained` (tests/conftest.py), shared with test_evaluate.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math

import pytest

from finetune.training.checkpoints import prepare_checkpoints
from finetune.training.models import load_for_training
from finetune.vllm_serve import max_lora_rank
from tests.conftest import REPO, merge, typed

LINEAR_LAYERS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
METRIC_KEYS = (
    "train_loss",
    "eval_loss",
    "best_eval_loss",
    "best_epoch",
    "mean_token_accuracy",
    "entropy",
    "tokens_processed",
    "trainable_params",
    "trainable_percent",
)
# Measured anew on every run: in the timing file, which no DVC stage declares, never in the metrics (an out).
TIMING_KEYS = ("tokens_per_second", "train_runtime", "peak_memory_mb")


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_train_writes_adapter_weights_tokenizer_and_model_card(trained):
    names = {p.name for p in trained.adapter.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    } <= names
    assert not [n for n in names if n.endswith(".bin")]


def test_adapter_is_lora_on_every_linear_layer_of_the_base(trained):
    config = json.loads((trained.adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert (config["r"], config["lora_alpha"]) == (16, 32)  # lora.r and lora.alpha in params.yaml
    assert {
        m.rsplit(".", 1)[-1] for m in config["target_modules"]
    } == LINEAR_LAYERS  # target_modules: all-linear (lm_head excluded)


def test_adapter_weights_were_trained(trained):
    from safetensors.torch import load_file

    weights = load_file(trained.adapter / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert len(lora_b) == len(LINEAR_LAYERS)  # one per linear layer of the one-layer tiny model
    assert any(t.abs().max() > 0 for t in lora_b)  # LoRA's B starts at zero: non-zero means the optimiser moved it


def test_adapter_tokenizer_keeps_the_base_chat_template(trained):
    from transformers import AutoTokenizer

    assert (
        AutoTokenizer.from_pretrained(trained.adapter).chat_template
        == AutoTokenizer.from_pretrained(trained.base).chat_template
    )


def test_model_card_holds_the_vllm_serve_command_and_the_data_digests(trained):
    card = (trained.adapter / "README.md").read_text(encoding="utf-8")
    # model.name tiny exists only as a local directory, so vLLM is pointed at it.
    r = json.loads((trained.adapter / "adapter_config.json").read_text())["r"]  # 16 here: vLLM's default, any above
    assert (
        f"vllm serve {trained.base} --enable-lora --max-lora-rank {max_lora_rank([r])} --max-loras 1 "
        f"--lora-modules adapter={trained.adapter}"
    ) in card
    assert md5(trained.splits.train) in card and md5(trained.splits.val) in card
    assert card.startswith("---\nlibrary_name: peft\n")


def test_train_metrics_report_loss_accuracy_throughput_and_size(trained):
    metrics = json.loads(trained.metrics.read_text())
    missing = [k for k in METRIC_KEYS if k not in metrics]
    assert not missing
    for key in METRIC_KEYS:
        assert isinstance(metrics[key], (int, float)) and math.isfinite(metrics[key]), key
    assert metrics["best_epoch"] == 1.0  # one epoch, evaluated once
    assert metrics["global_step"] == 3  # 12 examples / batch size 4
    assert metrics["eval_loss"] == pytest.approx(metrics["best_eval_loss"], rel=1e-3)  # the best model is the one kept
    assert 0 <= metrics["mean_token_accuracy"] <= 1
    assert metrics["tokens_processed"] > 12
    assert metrics["trainable_params"] > 0 and 0 < metrics["trainable_percent"] < 100


def test_runtime_throughput_and_memory_go_to_the_timing_file_not_the_metrics(trained):
    metrics, timing = json.loads(trained.metrics.read_text()), json.loads(trained.timing.read_text())
    assert not set(TIMING_KEYS) & set(metrics)
    assert set(timing) == set(TIMING_KEYS)
    assert timing["tokens_per_second"] == pytest.approx(metrics["tokens_processed"] / timing["train_runtime"])
    assert timing["peak_memory_mb"] > 0


def test_the_curves_folder_holds_the_curves_and_nothing_else(trained):
    # dvc.yaml plots the folder file by file (x: step): a summary or params file there would be a broken plot.
    files = {p.relative_to(trained.live).as_posix() for p in trained.live.rglob("*") if p.is_file()}
    assert {"plots/metrics/loss.tsv", "plots/metrics/eval/loss.tsv", "plots/metrics/learning_rate.tsv"} <= files
    assert all(f.startswith("plots/metrics/") and f.endswith(".tsv") for f in files), files
    assert not any(word in f for f in files for word in ("runtime", "flos", "epoch", "num_tokens")), files
    for f in files:
        with (trained.live / f).open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        assert rows and "step" in rows[0], f


def test_the_trainer_trains_on_a_bitsandbytes_4bit_base(trained):
    import bitsandbytes as bnb

    [loaded] = [m for m in trained.loaded if m.quant]  # the model train loaded for training
    assert loaded.quant.load_in_4bit is True
    lora_bases = {
        name: module.base_layer for name, module in loaded.model.named_modules() if hasattr(module, "lora_A")
    }
    assert {name.rsplit(".", 1)[-1] for name in lora_bases} == LINEAR_LAYERS
    assert all(isinstance(layer, bnb.nn.Linear4bit) for layer in lora_bases.values())


def test_a_cpu_run_trains_and_saves_the_adapter_in_fp32_over_the_4bit_base(trained):
    """TRL casts a 4-bit model's LoRA weights to bf16; on a CPU (compute dtype fp32) they train in fp32."""
    from safetensors import safe_open

    [loaded] = [m for m in trained.loaded if m.quant]
    trainable = [p for p in loaded.model.parameters() if p.requires_grad]
    assert trainable and {str(p.dtype) for p in trainable} == {"torch.float32"}
    with safe_open(trained.adapter / "adapter_model.safetensors", "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float32"}


def test_adapter_weights_follow_a_float32_compute_dtype_and_are_left_alone_under_bf16():
    import torch

    from finetune.training.trainer import keep_adapter_in_compute_dtype

    def model():
        m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
        m[0].requires_grad_(False)  # the frozen base keeps its dtype
        return m

    m = model()
    keep_adapter_in_compute_dtype(m, torch.float32)
    assert m[1].weight.dtype == torch.float32 and m[0].weight.dtype == torch.bfloat16
    m = model()
    keep_adapter_in_compute_dtype(m, torch.bfloat16)
    assert m[1].weight.dtype == torch.bfloat16


@pytest.mark.parametrize("load_in_4bit", [True, False])
def test_load_base_quantises_the_linear_layers_to_4bit_only_when_asked(tiny_base, small_params, load_in_4bit):
    import bitsandbytes as bnb
    import torch

    quant = typed(small_params).quant.model_copy(update={"load_in_4bit": load_in_4bit})
    model = load_for_training(tiny_base, typed(small_params).model, quant)
    linear = {name.rsplit(".", 1)[-1]: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert LINEAR_LAYERS <= set(linear)
    four_bit = {name for name, m in linear.items() if isinstance(m, bnb.nn.Linear4bit)}
    assert four_bit == (LINEAR_LAYERS if load_in_4bit else set())


def test_after_an_evaluation_training_runs_on_the_4bit_training_layout_whatever_the_save_strategy(
    tiny_base, small_params
):
    """bitsandbytes repacks 4-bit weights into a CPU inference layout when an AVX512-BF16 CPU evaluates them, and
    only a checkpoint save used to undo it. The trainer's callbacks must undo it after every evaluation: the weights
    are packed here exactly as bitsandbytes' eval forward does, then the callbacks run as after an evaluation."""
    import bitsandbytes as bnb
    import torch
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    from finetune.training.recipe import callbacks

    p = typed(small_params)
    model = load_for_training(tiny_base, p.model, p.quant)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    weights = [bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state) for m in layers]
    codes = [m.weight.data.clone() for m in layers]
    for m in layers:
        m.weight.data, m.weight.quant_state = _convert_weight_packed_for_cpu(m.weight.data, m.weight.quant_state)
    assert all(m.weight.quant_state.packing_format_for_cpu for m in layers)
    for cb in callbacks(p.train, live=None):
        cb.on_evaluate(args=None, state=None, control=None, model=model)
    for m, code, weight in zip(layers, codes, weights, strict=True):
        assert not getattr(m.weight.quant_state, "packing_format_for_cpu", False)
        assert torch.equal(m.weight.data.view(torch.uint8).reshape(-1), code.view(torch.uint8).reshape(-1))
        # The scales come back through bitsandbytes' own inverse (the one a checkpoint save uses), which rounds
        # the double-quantised absmax: the same weights to within that rounding.
        after = bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state)
        assert torch.allclose(after, weight, rtol=0.02, atol=1e-3)


def test_a_finished_run_leaves_no_checkpoint_only_its_own_stamp(trained):
    assert not list(trained.checkpoints.glob("checkpoint-*"))  # the stale checkpoint-99 included
    stamp = json.loads((trained.checkpoints / "run.json").read_text())
    assert stamp["fingerprint"] != "of-another-run"


def test_a_new_run_does_not_continue_the_curve_of_another_run(trained):
    with (trained.live / "plots" / "metrics" / "loss.tsv").open() as fh:
        steps = [int(row["step"]) for row in csv.DictReader(fh, delimiter="\t")]
    assert 99 not in steps  # the old run's row is gone
    assert steps and max(steps) <= json.loads(trained.metrics.read_text())["global_step"]


def stamped(folder, fingerprint, checkpoint="checkpoint-4"):
    (folder / checkpoint).mkdir(parents=True)
    (folder / checkpoint / "trainer_state.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"fingerprint": fingerprint}))
    return folder


def test_prepare_checkpoints_discards_checkpoints_stamped_with_another_fingerprint(tmp_path):
    folder = stamped(tmp_path / "checkpoints", "old-params")
    assert prepare_checkpoints(folder, "new-params") is False
    assert [p.name for p in folder.iterdir()] == ["run.json"]
    assert json.loads((folder / "run.json").read_text()) == {"fingerprint": "new-params"}


def test_prepare_checkpoints_resumes_checkpoints_stamped_with_the_same_fingerprint(tmp_path):
    folder = stamped(tmp_path / "checkpoints", "same")
    assert prepare_checkpoints(folder, "same") is True
    assert (folder / "checkpoint-4" / "trainer_state.json").exists()


def test_prepare_checkpoints_discards_unstamped_checkpoints_and_creates_a_missing_folder(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-7").mkdir(parents=True)
    assert prepare_checkpoints(folder, "fp") is False
    assert not (folder / "checkpoint-7").exists()
    assert prepare_checkpoints(tmp_path / "new", "fp") is False
    assert (tmp_path / "new" / "run.json").exists()


def test_fingerprint_changes_with_the_train_params_and_the_data_and_nothing_else(tmp_path, tiny_base, small_params):
    from finetune.training.checkpoints import fingerprint

    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train.write_text('{"id": "a"}\n')
    val.write_text('{"id": "b"}\n')
    first = fingerprint(typed(small_params), train, val, tiny_base)
    assert fingerprint(typed(small_params), train, val, tiny_base) == first
    not_trains = merge(small_params, {"eval": {"batch_size": 1}})
    assert fingerprint(typed(not_trains), train, val, tiny_base) == first
    changed = merge(small_params, {"train": {"learning_rate": 0.1}})
    assert fingerprint(typed(changed), train, val, tiny_base) != first
    val.write_text('{"id": "c"}\n')
    assert fingerprint(typed(small_params), train, val, tiny_base) != first


def test_train_and_evaluate_print_neither_the_kernels_community_warning_nor_the_checkpointing_future_warning():
    """Two messages a user reads as errors though nothing is wrong (finetune/training/models.py): bitsandbytes' on an
    AVX512-BF16 CPU without `kernels`, and transformers' FutureWarning on each peft call. Raised here as bitsandbytes
    and transformers raise them, in a fresh process with default warnings, after the modules train and evaluate load
    models through: neither may reach stderr."""
    import subprocess
    import sys

    script = (
        "import logging, warnings\n"
        "import stages.train, finetune.training.models\n"
        "logging.basicConfig()\n"
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning("
        "'Failed to load CPU gemm_4bit_forward from kernels-community: no kernels')\n"
        "warnings.warn('`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
        "`is_activation_checkpointing` instead.', FutureWarning)\n"
        "logging.getLogger('bitsandbytes').warning('canary')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "canary" in proc.stderr  # other bitsandbytes warnings still show
    assert "gemm_4bit_forward" not in proc.stderr and "is deprecated" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("strategy", ["group_by_length", "random"])
def test_train_sampling_strategy_reaches_the_trainer(small_params, strategy):
    from finetune.training.recipe import sft_config

    p = typed(merge(small_params, {"train": {"sampling_strategy": strategy}}))
    assert sft_config(p.train, p.model.max_seq_len, "unused", p.quant).train_sampling_strategy == strategy


def test_train_logs_one_line_per_epoch_and_neither_the_trainers_dicts_nor_bar_updates(trained):
    """stderr is no terminal here, as in `dvc repro > log`: no step bar, no `{'loss': …}` line per logging step."""
    err = trained.result.stderr
    epochs = [line for line in err.splitlines() if line.startswith("[train] epoch ")]
    n = len(epochs)
    assert n and [e.split(":")[0] for e in epochs] == [f"[train] epoch {i}/{n}" for i in range(1, n + 1)], epochs
    assert all(", loss " in e.replace(":", ",") and ", eval_loss " in e for e in epochs), epochs
    assert "{'loss'" not in err and "\r" not in err


def test_an_epoch_line_gives_the_mean_train_loss_and_the_last_evaluation():
    from finetune.training.recipe import epoch_line

    line = epoch_line(2, 4, [1.0, 2.0], {"eval_loss": 1.3, "eval_mean_token_accuracy": 0.41, "loss": 2.0}, 38.2)
    assert line == "epoch 2/4: loss 1.5, eval_loss 1.3, eval token accuracy 0.41, 38 s"
