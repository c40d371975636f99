"""`finetune generate`: blocks -> chat examples for every task in generate.tasks, as the task file defines them.

Optionally a teacher LLM on any OpenAI-compatible endpoint adds paraphrased questions and question/answer pairs it
writes from the blocks of the tasks that opt in (generate.teacher).
"""

from __future__ import annotations

from collections import Counter

import click

from finetune.generation.examples import build, merge_duplicates, unambiguous, unread_kinds
from finetune.generation.taskfile import load
from finetune.io import InputError, load_records, log, write_json, write_jsonl
from finetune.params import load_params, params_option


@click.command()
@click.option("--input", "input_path", required=True, help="extract's blocks, e.g. data/interim/heating/blocks.jsonl.")
@click.option("--output", required=True)
@click.option("--metrics", "metrics_path", required=True)
@click.option("--tasks", "tasks_path", required=True, help="The task file, e.g. domains/heating/tasks.yaml.")
@params_option
def cli(input_path, output, metrics_path, tasks_path, params_path):
    """Generate chat examples for every task in generate.tasks."""
    gparams = load_params(params_path).generate
    taskfile = load(tasks_path)
    blocks = load_records(input_path, ("id", "source", "kind", "title", "text"), "a block")
    built, ambiguity = build(blocks, gparams, taskfile, str(params_path[-1]))
    examples, merged = merge_duplicates(built)
    if ambiguity["dropped_ambiguous"]:
        n = ambiguity["dropped_ambiguous"]
        log("generate", f"dropped {n} examples asking the same question as another with a different answer")
    if merged:
        log("generate", f"merged {merged} examples identical to an earlier one from another source")
    if not examples:
        raise InputError(input_path, f"no examples: none of the tasks {gparams.tasks} found a block to build from")
    counts = Counter(e["task"] for e in examples)
    for name in gparams.tasks:
        if not counts[name]:
            # A generic task (TABLE, OPTION, …) has nothing to read in many corpora: say so, do not fail.
            log("generate", f"warning: task {name} made no examples (no block in {input_path} matches it)")
    for kind, (n, hint) in unread_kinds(blocks, taskfile).items():
        log("generate", f"warning: {n} {kind} blocks read by no task: {hint}")
    metrics = {}
    t = gparams.teacher
    if t.endpoint:  # optional teacher LLM: paraphrased questions, pairs written from the blocks, or both
        from finetune.generation import teacher, teacher_pairs

        if not t.model:
            raise InputError(params_path, "generate.teacher.endpoint is set but generate.teacher.model is not")
        section = {}
        if t.mode in ("pairs", "both"):
            pairs, section = teacher_pairs.run(blocks, examples, gparams, taskfile, str(params_path))
        if t.mode in ("paraphrase", "both"):
            prefixes = {name: task.prefix for name, task in taskfile.tasks.items()}
            examples, section["paraphrases"] = teacher.run(examples, gparams, prefixes)
            stats = section["paraphrases"]
            added = f"{stats['added']} added of {stats['requested']}"
            log("generate", f"teacher paraphrases: {added}, dropped {stats['dropped']}")
        if t.mode in ("pairs", "both"):
            examples += pairs
        metrics["teacher"] = section
        # The teacher's questions and paraphrases pass the same rule: named where shared, none with two answers.
        examples, again = unambiguous(examples, blocks, gparams.name_document)
        ambiguity = {k: n + again[k] for k, n in ambiguity.items()}
        counts = Counter(e["task"] for e in examples)
    per_task = {name: counts[name] for name in sorted(set(gparams.tasks) | set(counts))}
    write_jsonl(output, examples)
    record = {"examples": len(examples), "per_task": per_task, "duplicates_merged": merged, **ambiguity}
    write_json(metrics_path, record | metrics)
    log("generate", f"{len(examples)} examples: " + ", ".join(f"{task} {n}" for task, n in per_task.items()))
