"""The README and docs/ show only commands that something here runs, and links that lead somewhere.

Every command line in a ```bash block, and every `$ ` line in a ```console block, of README.md and docs/*.md must be
in RUN_BY (the files that run it, and how they spell the run) or in NOT_RUN (why it cannot run here; the docs say
"not run here" on that line). A new command in the docs therefore needs a test, or a reason, before this passes.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import shlex

import pytest
import yaml

from tests.conftest import REPO
from tests.dvcrepo import sh

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")

# The README's two fresh-machine commands: set-up, then `dvc repro` or the tests. .ci/run runs the second verbatim
# and the same set-up (test_fresh_machine_commands pins both); the shared pipeline run runs `dvc repro`.
README_BLOCKS = re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(encoding="utf-8"), re.DOTALL)
README_RUN, README_TEST = README_BLOCKS[:2]
REPRO = ("tests/dvcrepo.py", '["dvc", "repro"]')  # the shared run of the whole pipeline (pipeline_run)


def words(line: str) -> str:
    """A command line as the shell splits it, comments dropped, joined by one space."""
    return " ".join(shlex.split(line, comments=True))


def set_up(command: str) -> str:
    return command.split(" && pip install --no-deps -e . && ")[0]


# Documented command (`words`) -> where it runs: each (file, text) pair says `file` holds `text` (whitespace-
# insensitive), the invocation that runs that command.
RUN_BY: dict[str, list[tuple[str, str]]] = {
    # README
    words(README_RUN): [(".ci/run", "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.lock"), REPRO],
    words(README_TEST): [(".ci/run", README_TEST)],
    "mkdir -p domains/boards/raw && cp ~/board-notes/*.md domains/boards/raw/": [
        ("tests/test_domains.py", '(folder / "raw").mkdir(parents=True)')
    ],
    "cp domains/cli_tool/tasks.yaml domains/cli_tool/params.yaml domains/boards/ && echo questions: [] > "
    "domains/boards/questions.yaml": [
        ("tests/test_domains.py", 'for name in ("tasks.yaml", "params.yaml"):'),
        ("tests/test_domains.py", '(folder / "questions.yaml").write_text("questions: []\\n")'),
    ],
    # docs/experiments.md
    "dvc exp show": [
        ("tests/test_experiments.py", 'sh(["dvc", "exp", "show"], repo, env={"COLUMNS": str(TERMINAL)})')
    ],
    "dvc metrics show": [
        ("tests/test_experiments.py", 'sh(["dvc", "metrics", "show"], repo)'),
        ("tests/test_docs.py", '["dvc", "metrics", "show", "--json"]'),
    ],
    "dvc metrics diff --all": [("tests/test_experiments.py", 'sh(["dvc", "metrics", "diff", "--all"], repo)')],
    "dvc plots show": [("tests/test_docs.py", '["dvc", "plots", "show"')],
    "dvc metrics show --json metrics/compare.json": [
        ("tests/test_domains.py", '["dvc", "metrics", "show", "--json", "metrics/compare.json"]')
    ],
    "dvc exp run -S domains/skein_howto/params.yaml:++train.learning_rate=0.001": [
        (
            "tests/test_domains.py",
            '["dvc", "exp", "run", "-S", "domains/skein_howto/params.yaml:++train.learning_rate=0.001"]',
        )
    ],
    r"dvc exp show --drop .* --keep Experiment|\w+\.rouge_l(_base)?$": [
        ("tests/test_domains.py", '["dvc", "exp", "show", "--csv", "--drop", ".*", "--keep", HEADLINES]')
    ],
    "dvc exp run -S lora.r=64": [("tests/test_sharing.py", '["dvc", "exp", "run", "-n", "r64", "-S", "lora.r=64"]')],
    "dvc exp run -S train.learning_rate=1e-4": [
        ("tests/test_sharing.py", '["dvc", "exp", "run", "-n", "r64", "-S", "lora.r=64"]')
    ],
    "dvc exp run --queue -S lora.r=8,16,64": [
        ("tests/test_experiments.py", '["dvc", "exp", "run", "--queue", "-S", "lora.r=8,64"]')
    ],
    "dvc exp run --queue -S lora.r=8,64": [
        ("tests/test_experiments.py", '["dvc", "exp", "run", "--queue", "-S", "lora.r=8,64"]')
    ],
    "dvc exp run --queue -n lr1e-4 -S train.learning_rate=1e-4": [
        ("tests/test_experiments.py", '["dvc", "exp", "run", "--queue", "-S",'),
        ("tests/test_sharing.py", '["dvc", "exp", "run", "-n", "r64", "-S", "lora.r=64"]'),
    ],
    "dvc queue start -j 1": [("tests/test_experiments.py", '["dvc", "queue", "start", "-j", "1"]')],
    "dvc queue status": [("tests/test_experiments.py", '["dvc", "queue", "status"]')],
    "dvc repro": [REPRO],
    "git add -A && git commit -qm repro": [
        ("tests/test_pipeline.py", 'sh(["git", "add", "-A"], dst) sh(["git", "commit", "-qm", "repro"], dst)')
    ],
    "dvc exp show --drop .* --keep "
    r"Experiment|lora\.r$|train\.learning_rate|eval_loss|finetuned\.overall\.rouge_l|delta\.overall\.rouge_l": [
        ("tests/test_experiments.py", 'SHOW = ["dvc", "exp", "show", "--drop", ".*", "--keep", KEEP]')
    ],
    r"dvc exp diff riant-weys tenty-acts | grep -E Path|lora|finetuned\..*rouge_l": [
        ("tests/test_experiments.py", '["dvc", "exp", "diff", "--all", "--json", sweep.r8, sweep.r64]')
    ],
    "dvc plots diff riant-weys tenty-acts": [
        ("tests/test_experiments.py", '["dvc", "plots", "diff", "--json", sweep.r8, sweep.r64]')
    ],
    # docs/team-workflow.md: the SSH remote is an OpenSSH server the test starts on 127.0.0.1
    "dvc remote add -d team /mnt/ml-share/finetune-dvc": [
        ("tests/test_sharing.py", '["dvc", "remote", "add", "-d", "store", str(remote)]')
    ],
    "dvc remote add -d team ssh://dvc@ml-cache.example.com/srv/dvc/finetune": [
        ("tests/test_sharing.py", '["dvc", "remote", "add", "-d", "team", server.url(root / "dvc-store")]')
    ],
    "dvc remote modify --local team keyfile ~/.ssh/id_ed25519": [
        ("tests/test_sharing.py", '["dvc", "remote", "modify", "--local", "team", "keyfile", str(server.keyfile)]')
    ],
    "git add .dvc/config && git commit -m DVC remote: team": [
        (
            "tests/test_sharing.py",
            'sh(["git", "add", ".dvc/config"], a, env=env) sh(["git", "commit", "-qm", "DVC remote: team"], a, env=env)',
        )
    ],
    "dvc exp push origin r64": [("tests/test_sharing.py", '["dvc", "exp", "push", "origin", "r64"]')],
    "dvc push --run-cache": [("tests/test_sharing.py", '["dvc", "push", "--run-cache"]')],
    "dvc exp list origin": [("tests/test_sharing.py", '["dvc", "exp", "list", "origin"]')],
    "dvc pull --with-deps report@cli_tool": [
        ("tests/test_domains.py", '["dvc", "pull", "--with-deps", "report@cli_tool"]')
    ],
    "dvc repro report@cli_tool": [("tests/test_domains.py", '["dvc", "repro", "report@cli_tool"]')],
    "dvc exp pull origin r64": [("tests/test_sharing.py", '["dvc", "exp", "pull", "origin", sweep.name]')],
    "dvc pull --run-cache": [("tests/test_sharing.py", '["dvc", "pull", "--run-cache"]')],
    "dvc exp run --pull -S lora.r=64": [
        ("tests/test_sharing.py", '["dvc", "exp", "run", "--pull", "-S", "lora.r=64"]')
    ],
    # docs/serving.md
    "finetune export --vllm --port 8000": [("tests/test_compare.py", 'invoke(cli, ["--vllm", "--port", "8000"])')],
    "finetune evaluate --domain cli_tool --endpoint http://127.0.0.1:8000/v1 --model cli_tool": [
        ("tests/test_endpoint.py", 'args = ["--domain", "heating", "--endpoint", server.url, "--model", "heating"]')
    ],
    "finetune export --model models/base --adapter models/heating --output models/merged": [
        ("tests/test_export.py", "assert_ok(invoke(export_cli, args))")
    ],
    "pip install transformers[serving]": [("pyproject.toml", '"transformers[serving]'), (".ci/run", "pip install -r requirements.lock"), ("requirements.lock", "transformers==")],
    "transformers serve models/merged --host 127.0.0.1 --port 8000 &": [
        ("tests/serving.py", '[str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)'),
        ("tests/test_export.py", "transformers_serve(exported.merged"),
    ],
    "finetune evaluate --domain heating --endpoint http://127.0.0.1:8000/v1 --model models/merged": [
        ("tests/test_export.py", 'args = ["--endpoint", url, "--model", out.name'),
        ("tests/test_endpoint.py", 'args = ["--domain", "heating", "--endpoint", server.url, "--model", "heating"]'),
    ],
    # docs/your-own-data.md
    "finetune verify data my_chats.jsonl": [("tests/test_verify.py", '["verify", "data", *[str(a) for a in args]]')],
    "finetune verify data data/processed/heating/train.jsonl --model models/base --max-seq-len 1024": [
        ("tests/test_verify.py", 'verify(path, "--model", model, "--max-seq-len", 128)')
    ],
}

# Documented command -> why nothing here runs it.
NOT_RUN = {
    "vllm serve models/merged --port 8000": "vLLM needs a GPU",
    "vllm serve models/base --enable-lora --max-lora-rank 16 --max-loras 1 --lora-modules heating=models/heating": (
        "vLLM needs a GPU"
    ),
    "vllm serve models/base --enable-lora --max-lora-rank 16 --max-loras 4 --lora-modules heating=models/heating "
    "cli_tool=models/cli_tool datasheets=models/datasheets skein_howto=models/skein_howto --port 8000": "vLLM needs a GPU",
    "pip install dvc-s3 && dvc remote add -d team s3://example-ml-cache/finetune": "needs an S3 bucket",
    "dvc remote modify --local team profile ml-cache": "needs an S3 bucket and an AWS account",
    "pip install pip-tools && pip-compile --extra cpu --extra test --strip-extras --allow-unsafe --no-emit-index-url "
    "--no-emit-find-links --output-file requirements.lock pyproject.toml": "the tests never reach a package index",
    "grep -v ^torch== requirements.lock > /tmp/requirements.txt && pip install -r /tmp/requirements.txt && pip install "
    "--no-deps -e .": "needs a GPU machine",
}


def documented_commands() -> list[tuple[str, str, str]]:
    """(where, command, the line as written) for every command line in a bash or console block of the docs."""
    found = []
    for path in DOCS:
        lang = None
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if fence := FENCE.match(line):
                lang = None if lang is not None else fence.group(1)
                continue
            text = line if lang == "bash" else line[2:] if lang == "console" and line.startswith("$ ") else None
            if text is not None and (command := words(text)):
                found.append((f"{path.relative_to(REPO)}:{n}", command, line))
    return found


def flat(text: str) -> str:
    return " ".join(text.split())


def runnable_source(file: str) -> str:
    """The file's source, whitespace-insensitive, less the RUN_BY table: the table's own quotes of the invocations
    in this file must not count as running them."""
    text = (REPO / file).read_text(encoding="utf-8")
    if file.endswith(".py"):
        for node in ast.parse(text).body:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "RUN_BY":
                text = text.replace(ast.get_source_segment(text, node), "")
    return flat(text)


def test_every_documented_command_is_run_by_a_test_or_a_script_or_said_not_to_run_here():
    commands = documented_commands()
    assert len(commands) >= 30  # the extraction itself works: the docs show about 35 commands
    unknown = [f"{where}: {command}" for where, command, _ in commands if command not in RUN_BY | NOT_RUN]
    assert not unknown, "commands the docs show that no test runs (add a test and a RUN_BY entry):\n" + "\n".join(
        unknown
    )
    unmarked = [where for where, command, line in commands if command in NOT_RUN and "not run here" not in line]
    assert not unmarked, f"say `not run here` on these lines: {unmarked}"
    shown = {command for _, command, _ in commands}
    assert not (set(RUN_BY) | set(NOT_RUN)) - shown, "entries for commands the docs no longer show"


@pytest.mark.parametrize("command", sorted(RUN_BY))
def test_what_runs_a_documented_command_is_still_there(command):
    for file, invocation in RUN_BY[command]:
        assert flat(invocation) in runnable_source(file), f"{file} no longer runs {command}"


def test_fresh_machine_commands_ci_runs_the_test_one_and_the_same_set_up_as_the_other():
    ci = [line for line in (REPO / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == README_TEST
    assert README_RUN.endswith(" && pip install -r requirements.lock && pip install --no-deps -e . && dvc repro")
    assert README_TEST.endswith(" && pip install -r requirements.lock && pip install --no-deps -e . && pytest")
    # The same set-up, except that the tests may need system packages the pipeline does not.
    packages = re.compile(r"apt-get install -y ([^&]*)")
    run_packages, test_packages = (set(packages.search(c).group(1).split()) for c in (README_RUN, README_TEST))
    assert "tesseract-ocr" in run_packages <= test_packages
    assert packages.sub("", set_up(README_RUN)) == packages.sub("", set_up(README_TEST))


def test_readme_is_under_8000_characters():
    assert len((REPO / "README.md").read_text(encoding="utf-8")) < 8000


def test_relative_links_lead_to_files_that_exist():
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
    assert not broken, broken


def test_the_export_stage_snippet_lists_what_export_reads():
    from finetune.cli import COMMANDS
    from tests.codedeps import closure, module_file, params_reads, reachable, rel

    text = (REPO / "docs/serving.md").read_text(encoding="utf-8")
    (snippet,) = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    stage = yaml.safe_load(snippet)["export"]
    assert stage["cmd"].split()[:2] == ["finetune", "export"]
    module = module_file(COMMANDS["export"].split(":")[0])
    assert {d for d in stage["deps"] if d.endswith(".py")} == rel(closure(module))
    assert set(stage["params"]) == params_reads(reachable(module))
    assert {"models/base", "models/heating"} <= set(stage["deps"])


# --- the commands of "Reading the results" (docs/experiments.md), on the shared pipeline run ----------------------


def test_metrics_show_gives_the_headline_file_alone_and_any_other_file_when_named(pipeline_run):
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], pipeline_run.repo).stdout)
    (workspace,) = shown.values()
    headline = json.loads((pipeline_run.repo / "metrics/headline.json").read_text())
    assert workspace["data"] == {"metrics/headline.json": {"data": headline}}
    # The per-stage detail is no metric, but DVC reads it when named, as docs/experiments.md says.
    names = ["metrics/eval/heating.json", "metrics/train/heating.json", "metrics/validation/heating.json"]
    (named,) = json.loads(sh(["dvc", "metrics", "show", "--json", *names], pipeline_run.repo).stdout).values()
    for name in names:
        assert named["data"][name]["data"] == without_lists(json.loads((pipeline_run.repo / name).read_text())), name


def without_lists(data):
    """A metrics file as DVC shows it: every number, string and flag, but no list (validation.json's list of dropped
    examples is for people, not a metric)."""
    if isinstance(data, dict):
        return {k: without_lists(v) for k, v in data.items() if not isinstance(v, list)}
    return data


def test_plots_show_writes_an_html_page_with_the_loss_curve(pipeline_run, tmp_path):
    sh(["dvc", "plots", "show", "--out", str(tmp_path / "plots")], pipeline_run.repo)
    page = (tmp_path / "plots" / "index.html").read_text(encoding="utf-8")
    assert "metrics/curves/heating/plots/metrics/loss.tsv" in page  # each curve file is a plot, titled by its path
    # The chart's data is in the page itself (the title alone shows even when the curve failed to load).
    with (pipeline_run.repo / "metrics/curves/heating/plots/metrics/loss.tsv").open() as fh:
        losses = [row["loss"] for row in csv.DictReader(fh, delimiter="\t")]
    assert losses and all(v in page or repr(float(v)) in page for v in losses), losses
