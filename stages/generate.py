"""`finetune generate`: blocks -> chat examples for every task in generate.tasks, as the task file defines them.

With --quality it counts the kinds of bad example we know (finetune.generation.quality: ambiguous, unnamed subject,
dangling lead-in, …) into a flat metrics file, and with --quality-examples writes the worst few of each beside it;
validate checks the counts against validate.quality, the report shows both. The words the checks need come from the
task file's `quality:` section, the token budget from model.max_seq_len.

With --model (models/base) every example is measured as validate measures it, with the base model's tokenizer and
chat template, and the blocks under one over model.max_seq_len are cut to fit (finetune.generation.budget), each
new part asked by what it says: the first `dvc repro` of long real documents does not stop on overlong examples.

Optionally a teacher LLM on any OpenAI-compatible endpoint adds paraphrased questions and question/answer pairs it
writes from the blocks of the tasks that opt in (generate.teacher).
"""

from __future__ import annotations

from collections import Counter

import click

from finetune.generation.builders import HISTORY_CHARS_PER_TOKEN
from finetune.generation.examples import (
    build,
    left_out_language,
    merge_boilerplate,
    merge_duplicates,
    unambiguous,
    unread_kinds,
)
from finetune.generation.followups import ask_in_turn
from finetune.generation.history import skipped
from finetune.generation.taskfile import load
from finetune.io import InputError, load_records, log, write_json, write_jsonl
from finetune.params import load_params, params_option


@click.command()
@click.option("--input", "input_path", required=True, help="extract's blocks, e.g. data/interim/heating/blocks.jsonl.")
@click.option("--output", required=True)
@click.option("--metrics", "metrics_path", required=True)
@click.option("--tasks", "tasks_path", required=True, help="The task file, e.g. domains/heating/tasks.yaml.")
@click.option("--quality", "quality_path", default=None, help="Counts of bad examples, e.g. metrics/quality/D.json.")
@click.option(
    "--quality-examples", default=None, help="The worst examples of each problem, e.g. data/interim/D/quality.json."
)
@click.option(
    "--model",
    default=None,
    help="The base model (models/base): its tokenizer measures each example, and blocks over budget are cut.",
)
@params_option
def cli(input_path, output, metrics_path, tasks_path, quality_path, quality_examples, model, params_path):
    """Generate chat examples for every task in generate.tasks."""
    params = load_params(params_path)
    gparams = params.generate
    taskfile = load(tasks_path)
    read = load_records(input_path, ("id", "source", "kind", "title", "text"), "a block")
    # A project's changelog, its contributors and sponsors (generate.skip_sections): no task asks about them.
    blocks = [b for b in read if not skipped(b, gparams.skip_sections)]
    skipped_sections = len(read) - len(blocks)  # counted now: fitting below may cut blocks into more
    if skipped_sections:
        log("generate", f"skipped {skipped_sections} blocks under a heading of generate.skip_sections")

    # model.max_seq_len bounds an imported conversation's history: no example is longer than could be trained on.
    def build_all(some: list[dict]) -> tuple[list[dict], dict]:
        return build(some, gparams, taskfile, str(params_path[-1]), params.model.max_seq_len)

    fitted = {}
    if model:  # measured with the base model's tokenizer: a block under an example over the budget is cut to fit
        from finetune.generation.budget import fit
        from finetune.training.models import load_tokenizer
        from finetune.validation.frames import count_tokens

        tokenizer = load_tokenizer(model, params.model.trust_remote_code)
        blocks, built, ambiguity, fitted = fit(blocks, build_all, tokenizer, params.model.max_seq_len)
        if fitted["cut_to_fit"]:
            log("generate", f"cut {fitted['cut_to_fit']} blocks whose examples were over model.max_seq_len tokens")
        if fitted["dropped_over_budget"]:
            n = fitted["dropped_over_budget"]
            log("generate", f"warning: left out {n} examples no cut could bring under model.max_seq_len tokens")

        def fits(messages: list[dict]) -> bool:
            n = count_tokens(tokenizer, [messages])[0][0]
            return n is not None and n <= params.model.max_seq_len
    else:
        built, ambiguity = build_all(blocks)

        def fits(messages: list[dict]) -> bool:  # no tokenizer: the characters a conversation's history may take
            return sum(len(m["content"]) for m in messages) <= params.model.max_seq_len * HISTORY_CHARS_PER_TOKEN

    # A later part of a cut section: the next turn after the part before it, where the task has follow_up phrasings.
    built, in_turn = ask_in_turn(built, blocks, taskfile, gparams.seed, gparams.name_document, fits)
    if in_turn["asked_in_turn"]:
        log("generate", f"asked {in_turn['asked_in_turn']} later parts of cut sections as the next turn")
    examples, merged = merge_duplicates(built)
    if ambiguity["dropped_ambiguous"]:
        n = ambiguity["dropped_ambiguous"]
        log("generate", f"dropped {n} examples asking the same question as another with a different answer")
    if merged:
        log("generate", f"merged {merged} examples identical to an earlier one from another source")
    examples, boilerplate = merge_boilerplate(examples, gparams.boilerplate_min_words)
    if boilerplate:
        log("generate", f"merged {boilerplate} examples whose answer an earlier document gave word for word")
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
    if taskfile.languages:  # declared: blocks in a language a task has no phrasings for are left out, and counted
        metrics["left_out_language"] = left_out_language(blocks, gparams, taskfile, str(params_path[-1]))
        if metrics["left_out_language"]:
            log(
                "generate",
                f"left out {metrics['left_out_language']} blocks in a language their task has no phrasings in",
            )
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
        examples, again = unambiguous(examples, blocks, gparams.name_document, gparams.name_documents == "all")
        ambiguity = {k: n + again[k] for k, n in ambiguity.items()}
        counts = Counter(e["task"] for e in examples)
    per_task = {name: counts[name] for name in sorted(set(gparams.tasks) | set(counts))}
    write_jsonl(output, examples)
    record = {"examples": len(examples), "per_task": per_task, "duplicates_merged": merged}
    record |= {
        "boilerplate_merged": boilerplate,
        **ambiguity,
        **fitted,
        **in_turn,
        "skipped_sections": skipped_sections,
    }
    write_json(metrics_path, record | metrics)
    log("generate", f"{len(examples)} examples: " + ", ".join(f"{task} {n}" for task, n in per_task.items()))
    if quality_path or quality_examples:
        from finetune.generation.quality import PROBLEMS, measure

        rules = {**taskfile.quality.model_dump(), "max_tokens": params.model.max_seq_len}
        counts = measure(examples, blocks, rules)
        counts |= {"skipped_sections": len(read) - len(blocks), "skipped_sections_of": len(read)}
        worst = counts.pop("worst")
        if quality_path:
            write_json(quality_path, counts)
        if quality_examples:
            write_json(quality_examples, worst)
        found = ", ".join(f"{p} {counts[p]}" for p in PROBLEMS if counts[p])
        log("generate", f"quality: {counts['flagged']} of {counts['examples']} examples flagged ({found or 'none'})")
