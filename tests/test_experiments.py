"""DVC experiments over the pipeline: a queued two-point grid, the `dvc exp show` columns docs/experiments.md uses,
and the diffs and overlaid plots between two experiments. One `dvc repro` and one queue serve every test here."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

from tests.conftest import slow_fixture
from tests.dvcrepo import copy_run, sh

TERMINAL = 120  # columns: what `less -S`, DVC's pager, shows of each line before one scrolls right

# The `dvc exp show` columns of docs/experiments.md: the params people sweep and a domain's headline metrics. DVC
# matches each --keep pattern from the start of the column name (re.match), so `learning_rate` alone keeps nothing.
KEEP = r"Experiment|rev$|lora\.r$|train\.learning_rate|heating\.rouge_l"
SHOW = ["dvc", "exp", "show", "--drop", ".*", "--keep", KEEP]
QUEUE_TIMEOUT_S = 600


def exp_rows(repo: Path, *extra: str) -> list[dict]:
    out = sh([*SHOW, "--csv", *extra], repo).stdout
    return list(csv.DictReader(io.StringIO(out)))


def wait_for_queue(repo: Path) -> str:
    """Poll `dvc queue status` until nothing is queued or running; returns the last status table."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = sh(["dvc", "queue", "status"], repo).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"queue still busy after {QUEUE_TIMEOUT_S} s:\n{status}")
        time.sleep(3)


@slow_fixture(scope="module")
def sweep(tmp_path_factory, fast_run):
    """The committed shared run (lora.r 16), copied, plus a grid lora.r=8,64 run through the queue with one worker."""
    repo = copy_run(fast_run, tmp_path_factory.mktemp("experiments") / "repo")

    # One quoted -S with a comma list queues one experiment per value. -j 1: parallel workers race
    # (docs/experiments.md).
    sh(["dvc", "exp", "run", "--queue", "-S", "lora.r=8,64"], repo)
    sh(["dvc", "queue", "start", "-j", "1"], repo)
    try:
        status = wait_for_queue(repo)
        assert "Failed" not in status, status  # `dvc queue logs NAME` tells why
        rows = {row["lora.r"]: row for row in exp_rows(repo) if row["Experiment"]}
        yield SimpleNamespace(repo=repo, status=status, r8=rows["8"]["Experiment"], r64=rows["64"]["Experiment"])
    finally:
        # The worker shuts itself down 10 s after the queue empties; this only matters when a test failed early.
        sh(["dvc", "queue", "stop", "--kill"], repo, check=False)


def test_plain_exp_show_and_metrics_show_print_each_domains_headline_readably(fast_run, tmp_path):
    repo = copy_run(fast_run, tmp_path / "repo")
    shown = json.loads((repo / "metrics/headline.json").read_text())
    domains = {key.split(".")[0] for key in shown}
    assert domains and all(f"{d}.rouge_l" in shown for d in domains)

    # Plain `dvc exp show` pipes the whole table (one column per headline number, param and dep) into the pager; the
    # first screen of a 120-column terminal holds the experiment, its time and every domain's ROUGE-L, as numbers.
    table = sh(["dvc", "exp", "show"], repo, env={"COLUMNS": str(TERMINAL)}).stdout.splitlines()
    screen = [line[:TERMINAL] for line in table]
    (header,) = [line for line in screen if "Experiment" in line]
    (workspace,) = [line for line in screen if line.split()[:1] == ["workspace"]]
    assert "…" not in "".join(screen)
    for domain in domains:
        name = f"{domain}.rouge_l"
        assert f" {name} " in f"{header} ", (name, header)
        end = header.index(name) + len(name)  # metrics are right-aligned under their name
        assert workspace[:end].split()[-1] == f"{shown[name]:.5g}", (name, workspace)

    # `dvc metrics show`: one row, the headline file's, and no column but its keys: no line wider than they need.
    lines = sh(["dvc", "metrics", "show"], repo).stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].split() == ["Path", *sorted(shown)]
    values = [str(round(shown[key], 5)) for key in sorted(shown)]
    assert lines[1].split() == ["metrics/headline.json", *values]
    cells = [max(len(key), len(value)) for key, value in zip(sorted(shown), values)]
    assert max(map(len, lines)) <= len("metrics/headline.json") + sum(4 + c for c in cells)
    # `dvc metrics diff --all` is the view that fits a terminal: one headline number a line, HEAD beside the workspace.
    diff = sh(["dvc", "metrics", "diff", "--all"], repo).stdout.splitlines()
    assert [line.split()[1] for line in diff[1:]] == sorted(shown)
    assert max(map(len, diff)) <= TERMINAL


def test_queue_runs_each_grid_point_as_its_own_experiment(sweep):
    rows = [row for row in exp_rows(sweep.repo) if row["Experiment"]]
    assert sorted(int(row["lora.r"]) for row in rows) == [8, 64]
    assert sweep.status.count("Success") == 2, sweep.status
    # Each point trained its own adapter: LoRA's trainable parameters grow linearly with the rank. Train's counts are
    # no metric (metrics/headline.json is the only one), so name the file.
    train = "metrics/train/heating.json"
    diff = sh(["dvc", "metrics", "diff", "--all", "--json", "--targets", train, "--", sweep.r8, sweep.r64], sweep.repo)
    params = json.loads(diff.stdout)[train]["trainable_params"]
    assert params["new"] == 8 * params["old"]
    # The queue ran in temporary copies: the workspace still holds the committed lora.r 16 and nothing changed.
    assert sh(["git", "status", "--porcelain"], sweep.repo).stdout == ""


def test_exp_show_keeps_the_swept_params_and_headline_metrics(sweep):
    header = sh([*SHOW, "--csv"], sweep.repo).stdout.splitlines()[0].split(",")
    assert sorted(header) == sorted(
        [
            "Experiment",
            "rev",
            "lora.r",
            "train.learning_rate",
            "heating.rouge_l",
            "heating.rouge_l_base",
            "heating.rouge_l_tasks",
            "heating.rouge_l_tasks_base",
        ]
    )
    # And the table form docs/experiments.md shows (wide tables are cut to the terminal; COLUMNS sets its width).
    table = sh([*SHOW, "--precision", "3"], sweep.repo, env={"COLUMNS": "160"}).stdout
    assert sweep.r8 in table and sweep.r64 in table


def test_metrics_and_exp_diff_between_two_experiments_are_per_task(sweep):
    val = (sweep.repo / "data/processed/heating/val.jsonl").read_text().splitlines()
    tasks = {json.loads(line)["task"] for line in val}
    # --all: on the tiny model many scores tie, and a diff leaves out what did not change.
    # The per-task scores are no metric (metrics/headline.json is the only one): --targets names their file.
    targets = ["--targets", "metrics/eval/heating.json", "metrics/train/heating.json", "--"]
    diff = sh(["dvc", "metrics", "diff", "--all", "--json", *targets, sweep.r8, sweep.r64], sweep.repo)
    metrics = json.loads(diff.stdout)
    evals = metrics["metrics/eval/heating.json"]
    for task in tasks | {"overall"}:
        for key in (f"finetuned.{task}.rouge_l", f"delta.{task}.rouge_l", f"baseline.{task}.rouge_l"):
            assert {"old", "new"} <= set(evals[key]), key
    assert metrics["metrics/train/heating.json"]["trainable_params"]["diff"] > 0

    exp = json.loads(sh(["dvc", "exp", "diff", "--all", "--json", sweep.r8, sweep.r64], sweep.repo).stdout)
    assert exp["params"]["params.yaml"]["lora.r"] == {"old": 8, "new": 64, "diff": 56}
    assert {"heating.rouge_l", "heating.rouge_l_base"} <= set(exp["metrics"]["metrics/headline.json"])


def test_plots_diff_overlays_both_loss_curves_and_both_task_bars(sweep):
    out = sh(["dvc", "plots", "diff", "--json", sweep.r8, sweep.r64], sweep.repo).stdout
    data = json.loads(out)["data"]
    # Each curve file and each per-domain chart is a plot of its own, named by its path (dvc.yaml's stage plots).
    for plot in ("metrics/curves/heating/plots/metrics/loss.tsv", "reports/heating/eval_tasks.csv"):
        (rendered,) = data[plot]
        assert {sweep.r8, sweep.r64} <= set(rendered["revisions"]), (plot, rendered["revisions"])
        rows = rendered["content"]["data"]["values"]
        assert {row["rev"] for row in rows} >= {sweep.r8, sweep.r64}, plot
