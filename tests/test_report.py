"""`finetune report`: one self-contained HTML page over a run's files (data, training, evaluation, answers), and
the Markdown report's full answers and chart. The browser tests render the page in headless Chromium, offline."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from finetune.evaluation.html import page
from finetune.evaluation.runfiles import RunFiles, load_run
from finetune.io import InputError, load_jsonl
from stages.report import cli as report_cli
from tests.conftest import HEATING_TASKS, assert_ok, invoke, params_file
from tests.test_evaluate import evaluated  # noqa: F401  (the baseline + evaluate outputs on the tiny model)

MANUAL = """\
# Test Manual

## Pumps

### Specifications — P-1

| Parameter | Value | Unit |
|---|---|---|
| Flow | 12 | l/min |

### Procedure — Priming

1. Close the outlet valve.
2. Fill the housing with water.
3. Start the pump and open the valve slowly.
"""

VALIDATION = {
    "success": False,
    "n_train": 12,
    "n_val": 8,
    "expectations": {
        "train_unique_ids": {"success": True, "unexpected_count": 0},
        "train_fits_max_seq_len": {"success": False, "unexpected_count": 3, "observed": 901},
    },
}


def files_under(root: Path, domain: str = "heating") -> RunFiles:
    """One domain's run files below `root`, where dvc.yaml's stages write them."""
    return RunFiles(
        extract=root / f"metrics/extract/{domain}.json",
        rejects=root / f"metrics/rejects/{domain}.json",
        generate=root / f"metrics/generate/{domain}.json",
        balance=root / f"metrics/balance/{domain}.json",
        validation=root / f"metrics/validation/{domain}.json",
        data_docs=root / f"reports/{domain}/validation",
        train=root / f"metrics/train/{domain}.json",
        curves=root / f"metrics/curves/{domain}",
        eval=root / f"metrics/eval/{domain}.json",
        baseline_predictions=root / f"data/eval/{domain}/baseline_predictions.jsonl",
        predictions=root / f"data/eval/{domain}/finetuned_predictions.jsonl",
        quality=root / f"metrics/quality/{domain}.json",
        quality_examples=root / f"data/interim/{domain}/quality_examples.json",
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, trained, evaluated, tiny_blocks_file):  # noqa: F811
    """A run's files laid out as dvc.yaml writes them: extract, generate and balance run for real on small inputs,
    a failed validation, and the tiny model's training and evaluation outputs."""
    from stages.balance import cli as balance_cli
    from stages.extract import cli as extract_cli
    from stages.generate import cli as generate_cli

    root = tmp_path_factory.mktemp("run")
    files = files_under(root)
    raw = root / "domains/heating/raw"
    raw.mkdir(parents=True)
    (raw / "manual.md").write_text(MANUAL, encoding="utf-8")
    (raw / "broken.jsonl").write_text('{"messages": [\n', encoding="utf-8")  # rejected, listed in rejects.json
    skip = params_file(root / "params.yaml", {"extract": {"on_error": "skip"}})
    common = ["--params", skip]
    assert_ok(
        invoke(
            extract_cli,
            ["--input", raw, "--output", root / "blocks.jsonl", "--metrics", files.extract, "--rejects", files.rejects]
            + common,
        )
    )
    examples = root / "examples.jsonl"
    assert_ok(
        invoke(
            generate_cli,
            ["--input", tiny_blocks_file, "--output", examples, "--metrics", files.generate, "--tasks", HEATING_TASKS]
            + ["--quality", files.quality, "--quality-examples", files.quality_examples, *common],
        )
    )
    assert_ok(
        invoke(
            balance_cli,
            ["--input", examples, "--train", root / "train.jsonl", "--val", root / "val.jsonl"]
            + ["--metrics", files.balance, "--plot", root / "dist.csv", *common],
        )
    )
    files.validation.parent.mkdir(parents=True, exist_ok=True)
    files.validation.write_text(json.dumps(VALIDATION), encoding="utf-8")
    files.train.parent.mkdir(parents=True, exist_ok=True)
    files.train.write_bytes(trained.metrics.read_bytes())
    for tsv in trained.live.rglob("*.tsv"):
        dst = files.curves / tsv.relative_to(trained.live)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(tsv.read_bytes())
    files.eval.parent.mkdir(parents=True, exist_ok=True)
    files.eval.write_bytes(evaluated.metrics.read_bytes())
    files.baseline_predictions.parent.mkdir(parents=True, exist_ok=True)
    files.baseline_predictions.write_bytes(evaluated.base_predictions.read_bytes())
    files.predictions.write_bytes(evaluated.predictions.read_bytes())
    return SimpleNamespace(root=root, files=files, params=skip, evaluated=evaluated)


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    out = run_dir.root / "reports/heating/index.html"
    assert_ok(invoke(report_cli, ["--output", out, "--params", run_dir.params, *_paths(run_dir.files)]))
    return out


def _paths(files: RunFiles) -> list:
    return [
        *("--extract", files.extract, "--rejects", files.rejects, "--generate", files.generate),
        *("--balance", files.balance, "--validation", files.validation, "--data-docs", files.data_docs),
        *("--train", files.train, "--curves", files.curves, "--eval", files.eval),
        *("--baseline-predictions", files.baseline_predictions, "--predictions", files.predictions),
        *("--quality", files.quality, "--quality-examples", files.quality_examples),
    ]


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each <pre>."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.pres: list[str] = []
        self._in_pre = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "pre":
            self._in_pre, self.pres = True, [*self.pres, ""]

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._in_pre:
            self.pres[-1] += data


def test_page_shows_the_data_numbers_of_the_run(report, run_dir):
    text = report.read_text(encoding="utf-8")
    extract = json.loads(run_dir.files.extract.read_text())
    balance = json.loads(run_dir.files.balance.read_text())
    for kind, n in extract["blocks"].items():
        assert re.search(rf'<td class="l">{kind}</td><td>{n}</td>', text), kind
    for task in balance["train_before"]:
        before, after = balance["train_before"][task], balance["train_after"][task]
        assert re.search(rf'<td class="l">{task}</td><td>\d+</td><td>{before}</td><td>{after}</td>', text), task
    assert "Rejects (1)" in text and "broken.jsonl" in text
    # The failed validation says so, names the failed expectation, and links to the Data Docs beside the page.
    assert "FAILED" in text and "train_fits_max_seq_len" in text
    assert '<a href="validation/index.html">Data Docs</a>' in text


def test_page_shows_training_summary_and_evaluation_per_task_with_counts(report, run_dir):
    text = report.read_text(encoding="utf-8")
    train = json.loads(run_dir.files.train.read_text())
    result = json.loads(run_dir.files.eval.read_text())
    assert f"<td>{train['tokens_processed']:.0f}</td>" in text.replace(",", "")
    assert f"<td>{train['best_epoch']:.2f}</td>" in text
    assert "cost" not in re.sub(r"<[^>]+>", " ", text).split()  # train.gpu_hourly_cost is not set
    for task, scores in result["finetuned"].items():
        base, d = result["baseline"][task]["rouge_l"], result["delta"][task]["rouge_l"]
        row = rf"<td class=\"l\">(<b>)?{task}(</b>)?</td><td>{scores['n']}</td><td>{base:.3f}</td>"
        assert re.search(row + rf"<td>{scores['rouge_l']:.3f}</td><td[^>]*>{re.escape(f'{d:+.3f}')}</td>", text), task


def test_answers_appear_in_full_with_their_line_breaks_next_to_the_reference(report, run_dir):
    pres = Elements(report.read_text(encoding="utf-8")).pres
    tuned = load_jsonl(run_dir.files.predictions)
    base = {r["id"]: r["prediction"] for r in load_jsonl(run_dir.files.baseline_predictions)}
    multiline = [r for r in tuned if "\n" in r["reference"]]
    assert multiline, "the tiny val set has procedures: multi-line references"
    for r in tuned:  # examples_per_task is 3 and the tiny val set holds one example per task: all are shown
        i = pres.index(r["reference"])
        assert pres[i + 1 : i + 3] == [base[r["id"]], r["prediction"]]


def test_page_requests_nothing_it_does_not_contain(report):
    text = report.read_text(encoding="utf-8")
    tags = Elements(text).tags
    assert not [t for t, _ in tags if t in ("script", "link", "iframe", "object", "embed", "img")]
    for tag, attrs in tags:
        for name in ("src", "srcset", "href", "xlink:href"):
            value = attrs.get(name) or ""
            assert not re.match(r"(?i)[a-z][a-z0-9+.-]*:|//", value), f"<{tag} {name}={value}> leaves the file"
    assert "url(" not in text and "@import" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_every_chart_is_inline_svg_with_a_mark_per_value(report, run_dir):
    text = report.read_text(encoding="utf-8")
    charts = re.findall(r'<svg class="chart".*?</svg>', text, flags=re.DOTALL)
    titles = [re.search(r"<title>(.*?)</title>", c).group(1) for c in charts]
    assert [t.split(" (")[0].split(",")[0] for t in titles] == [
        "Blocks per source kind",
        "Train examples per task",
        "Loss",
        "Token accuracy",
        "Learning rate",
        "ROUGE-L per task",
    ]
    result = json.loads(run_dir.files.eval.read_text())
    rouge = charts[-1]
    assert rouge.count('class="mark"') == 2 * (len(result["finetuned"]) - 1)  # two bars per task
    for task, scores in result["finetuned"].items():
        if task != "overall":
            assert f"{task} (n={scores['n']})" in rouge
    steps = len((run_dir.files.curves / "plots/metrics/loss.tsv").read_text().splitlines()) - 1
    val_steps = len((run_dir.files.curves / "plots/metrics/eval/loss.tsv").read_text().splitlines()) - 1
    assert charts[2].count('class="mark"') == steps + val_steps > 0


def test_page_shows_every_quality_count_of_generate(report, run_dir):
    from finetune.generation.quality import PROBLEMS

    text = report.read_text(encoding="utf-8")
    quality = json.loads(run_dir.files.quality.read_text())
    assert "<h2>Data quality</h2>" in text
    for p in PROBLEMS:
        assert re.search(rf'<td class="l">{p}</td><td>{quality[p]}</td><td>{quality[p + "_of"]}</td>', text), p


def test_quality_warnings_show_with_threshold_and_worst_examples_and_never_as_a_plain_pass(run_dir, tmp_path):
    run = load_run(run_dir.files)
    quality = {"examples": 200, "flagged": 9, "ambiguous": 0, "ambiguous_of": 200}
    quality |= {"dangling_lead_in": 6, "dangling_lead_in_of": 200, "bare_code": 3, "bare_code_of": 10}
    worst = [{"id": f"e{i}", "question": f"Q{i} <b>?", "answer": f"Do this {i}:"} for i in range(3)]
    examples = {"ambiguous": [], "dangling_lead_in": worst, "bare_code": []}
    entries = {
        "quality_ambiguous": {"success": True, "unexpected_count": 0, "observed": 0.0, "max_value": 0.0},
        "quality_dangling_lead_in": {
            "success": False, "unexpected_count": 1, "observed": 0.03, "max_value": 0.02, "severity": "warning"
        },
        "quality_bare_code": {
            "success": False, "unexpected_count": 1, "observed": 0.015, "max_value": 0.01, "severity": "warning"
        },
    }  # fmt: skip
    validation = {"success": True, "warnings": 2, "n_train": 10, "n_val": 2, "expectations": entries}
    text = page([replace(run, quality=quality, quality_examples=examples, validation=validation)], tmp_path, 1)
    assert '<span class="warn">passed with 2 quality warnings</span>' in text
    assert '<span class="pass">passed</span>' not in text
    assert re.search(r'<td class="l">dangling_lead_in</td><td>6</td><td>200</td><td>3.0%</td><td>2.0%</td><td>'
                     r'<span class="warn">warning</span>', text)  # fmt: skip
    assert "dangling_lead_in: the 3 worst of 6" in text and "Q2 &lt;b&gt;?" in text and "Do this 1:" in text
    assert "bare_code: the" not in text  # no examples to show, and none of ambiguous found
    assert "ambiguous: the" not in text


def test_the_page_shows_no_timing_even_from_old_metrics_so_the_same_inputs_give_the_same_bytes(run_dir, tmp_path):
    run = load_run(run_dir.files)
    timed = {
        "gpu_hours": 0.87,
        "cost": 0.38,
        "tokens_per_second": 1234.5,
        "train_runtime": 98.7,
        "peak_memory_mb": 4321,
    }
    text = page([replace(run, train={**run.train, **timed})], tmp_path, 1)
    assert text == page([run], tmp_path, 1)
    assert "metrics/timing/train/" in text


def test_model_output_is_shown_as_text_never_as_markup(run_dir, tmp_path):
    run = load_run(run_dir.files)
    rows = [dict(r, prediction="<script>alert(1)</script>\n<b>bold?</b>") for r in run.tuned_rows]
    text = page([replace(run, tuned_rows=rows)], tmp_path, 3)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\n&lt;b&gt;bold?&lt;/b&gt;" in text
    assert not [t for t, _ in Elements(text).tags if t == "script"]


def test_one_page_can_hold_several_runs(run_dir, tmp_path):
    a, b = load_run(run_dir.files, "heating"), load_run(run_dir.files, "ventilation")
    text = page([a, b], tmp_path, 1)
    assert '<h1 class="run">heating</h1>' in text and '<h1 class="run">ventilation</h1>' in text
    assert text.count('<svg class="chart"') == 2 * page([a], tmp_path, 1).count('<svg class="chart"')


def test_a_missing_or_broken_input_is_one_line_naming_the_file(run_dir, tmp_path):
    files = replace(run_dir.files, eval=tmp_path / "absent.json")
    with pytest.raises(InputError, match=r"absent\.json: not found: the evaluation metrics"):
        load_run(files)
    (tmp_path / "curves/plots/metrics").mkdir(parents=True)
    (tmp_path / "curves/plots/metrics/loss.tsv").write_text("step\tloss\n1\t2.5\n2\tnan?\n")
    with pytest.raises(InputError, match=r"loss\.tsv:3: expected numeric"):
        load_run(replace(run_dir.files, curves=tmp_path / "curves"))


def test_eval_md_keeps_full_answers_with_line_breaks_and_folds_long_ones(tmp_path):
    from finetune.evaluation.report import markdown

    long = "\n".join(f"{i}. Step number {i} of the procedure." for i in range(1, 10))
    rows = [
        {"id": "a", "task": "PROCEDURE", "prompt": "[PROCEDURE] How?", "reference": long, "prediction": "1. x\n2. y"},
    ]
    scores = {"n": 1, "rouge_l": 0.5, "exact_match": 0.0, "format_valid": 1.0, "chrf": 0.4}
    overall = {**scores, "latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "tokens_per_second": 10.0}
    result = {
        "baseline": {"overall": overall, "PROCEDURE": scores},
        "finetuned": {"overall": overall, "PROCEDURE": scores},
        "delta": {"overall": {k: 0.0 for k in SHOWN_KEYS}, "PROCEDURE": {k: 0.0 for k in SHOWN_KEYS}},
    }
    base = [{"id": "a", "prediction": "``` a fence inside\nand more"}]
    md = markdown(result, base, rows, 3, "eval.png")
    assert "<details>\n<summary>Reference: 1. Step number 1 of the procedure.…</summary>\n\n```text\n" + long in md
    assert "**Fine-tuned**\n\n```text\n1. x\n2. y\n```" in md
    assert "**Baseline**\n\n````text\n``` a fence inside\nand more\n````" in md  # a longer fence than the content's


SHOWN_KEYS = ("rouge_l", "exact_match", "format_valid", "chrf")


def test_eval_chart_has_a_title_and_the_example_count_per_task(evaluated):  # noqa: F811
    from finetune.evaluation.report import figure

    result = json.loads(evaluated.metrics.read_text())
    fig = figure(result)
    ax = fig.axes[0]
    assert (
        ax.get_title()
        == f"ROUGE-L per task, baseline vs fine-tuned ({result['finetuned']['overall']['n']} val examples)"
    )
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{t} (n={s['n']})" for t, s in result["finetuned"].items()]


# --- in a real browser --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_page_renders_offline_in_chromium_with_every_chart_drawn(report):
    from tests.browser import chart_drew, render

    shot = render(report)
    assert shot.requests == [report.resolve().as_uri()], "the page requested more than itself"
    assert not shot.violations and not shot.errors
    assert shot.height > 2000 and len(shot.charts) == 6
    assert not_blank(shot.screenshot)
    for chart in shot.charts:
        assert chart["marks"] > 0 and chart["width"] > 100 and chart["height"] > 50, chart["title"]
        assert chart_drew(shot.screenshot, chart), f"chart {chart['title']!r} is blank in the screenshot"


@pytest.mark.slow
def test_the_browser_check_catches_a_page_that_fetches_from_the_network(report, tmp_path):
    from tests.browser import render

    leaky = tmp_path / "leaky.html"
    text = report.read_text(encoding="utf-8")
    # Without the page's policy the browser tries the network; with it the fetch is refused: both must be caught.
    open_page = re.sub(r"<meta http-equiv=\"Content-Security-Policy\"[^>]*>", "", text)
    leaky.write_text(open_page.replace("</head>", '<link rel="stylesheet" href="https://cdn.example/x.css"></head>'))
    assert "https://cdn.example/x.css" in render(leaky).requests
    leaky.write_text(text.replace("</head>", '<img src="https://cdn.example/logo.png"></head>'))
    assert any("cdn.example/logo.png" in v for v in render(leaky).violations)


def not_blank(png: bytes) -> bool:
    from tests.browser import colours

    return len(colours(png)) > 20
