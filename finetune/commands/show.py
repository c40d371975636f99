"""Look at what the pipeline made, readably, for eyeballing (the manual check every team did by hand).

    finetune show examples --domain heating                 # 5 examples of every task generate made for heating
    finetune show examples --domain heating --task SPEC -n 20   # 20 SPEC examples, spread over all of them
    finetune show examples --input data/processed/heating/val.jsonl
    finetune show examples --domain cli_tool --problem bare_code  # every example with that problem, worst first

Prints task, source, question and answer to stdout; a conversation's earlier turns are shown before its question.
"""

from __future__ import annotations

from collections import defaultdict

import click

from finetune.io import InputError, load_jsonl


def spread(items: list, n: int) -> list:
    """n items evenly spread over the list (its first n would all come from the first few blocks)."""
    if n >= len(items):
        return items
    return [items[i * len(items) // n] for i in range(n)]


def _indent(text: str, first: str, width: int = 4) -> str:
    lines = text.splitlines() or [""]
    return "\n".join([first + lines[0], *(" " * width + line for line in lines[1:])])


def render(example: dict) -> str:
    turns = [m for m in example.get("messages", []) if m.get("role") != "system"]
    out = [f"  source: {example.get('source', '?')}"]
    for m in turns[:-2]:  # the history of a multi-turn conversation
        out.append(_indent(m.get("content", ""), f"  ({m.get('role')}) ", 4))
    if len(turns) >= 2:
        out.append(_indent(turns[-2].get("content", ""), "  Q: "))
        out.append(_indent(turns[-1].get("content", ""), "  A: "))
    return "\n".join(out)


@click.group("show")
def cli():
    """Show the pipeline's data readably."""


@cli.command("examples")
@click.option("--domain", default=None, help="A domain of this repository: what generate made for it.")
@click.option("--input", "input_path", default=None, help="Any examples file (instead of --domain).")
@click.option("--task", "tasks", multiple=True, metavar="TASK", help="Only this task (repeat for several).")
@click.option("-n", "n", default=5, show_default=True, type=click.IntRange(min=1), help="Examples per task.")
@click.option(
    "--problem",
    default=None,
    metavar="NAME",
    help="Every example with this data-quality problem (metrics/quality/<domain>.json counts them), worst first.",
)
def examples(domain, input_path, tasks, n, problem):
    """Print examples of each task: source, question, answer."""
    if problem is not None:
        if domain is None:
            raise click.UsageError("--problem needs --domain NAME: its blocks, task file and params define the checks")
        click.echo(with_problem(domain, problem))
        return
    if input_path is None:
        if domain is None:
            raise click.UsageError("give --domain NAME or --input PATH")
        from finetune.layout import domain_files

        input_path = domain_files(domain)["examples"]
    by_task = defaultdict(list)
    for e in load_jsonl(input_path):
        by_task[e.get("task", "?")].append(e)
    unknown = [t for t in tasks if t not in by_task]
    if unknown:
        raise InputError(
            input_path, f"no examples of task {', '.join(unknown)} (tasks there: {', '.join(sorted(by_task))})"
        )
    blocks = []
    for task in tasks or sorted(by_task):
        shown = spread(by_task[task], n)
        blocks.append(f"== {task}: {len(shown)} of {len(by_task[task])} ==")
        blocks += [f"[{i}]\n{render(e)}" for i, e in enumerate(shown, start=1)]
    click.echo("\n\n".join(blocks))


def with_problem(domain: str, problem: str) -> str:
    """Every example of the domain that finetune.generation.quality flags with `problem`, worst first, measured as
    generate measures them (the task file's words, model.max_seq_len)."""
    import difflib

    from finetune.generation.quality import PROBLEMS, Rules, measure
    from finetune.generation.taskfile import load
    from finetune.layout import domain_files
    from finetune.params import load_params

    if problem not in PROBLEMS:
        near = difflib.get_close_matches(problem, PROBLEMS, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise click.ClickException(f"unknown problem {problem!r} ({hint}known: {', '.join(PROBLEMS)})")
    files = domain_files(domain)
    examples = load_jsonl(files["examples"])
    words = load(files["tasks"]).quality.model_dump()
    max_tokens = load_params(["params.yaml", files["params"]]).model.max_seq_len
    # `worst` ranks every flagged example when it may hold all of them; its texts are cut, so show the examples.
    rules = Rules.from_mapping({**words, "max_tokens": max_tokens, "worst": max(1, len(examples))})
    result = measure(examples, load_jsonl(files["blocks"]), rules)
    by_id = {str(e.get("id", i)): e for i, e in enumerate(examples)}  # the ids measure gives them
    flagged = [by_id[w["id"]] for w in result["worst"][problem]]
    head = f"== {problem}: {len(flagged)} of {result['examples']} examples (checked {result[f'{problem}_of']}) =="
    return "\n\n".join([head, *(f"[{i}] {e.get('task', '?')}\n{render(e)}" for i, e in enumerate(flagged, 1))])
