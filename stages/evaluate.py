"""`finetune evaluate`: the base model + adapter on the val split, against the baseline stage's results.

Writes --metrics (metrics/eval/<domain>.json) as {"baseline": …, "finetuned": …, "delta": …}, each with `overall`
and one entry per task, so `dvc metrics diff` shows per-task deltas between experiments. Latency and throughput are in
`finetuned` only, here: the predictions file is a cached out and holds none, so the same answers give the same bytes.

With `--endpoint URL --model NAME` the fine-tuned answers come from a served model instead (vLLM, `transformers
serve`, any OpenAI-compatible API; see `finetune export`), asked greedily `eval.concurrency` at a time, with the
same scores and report. Its answers are cached in `--cache`, keyed by the request: a rerun asks only for what is
missing. The key is the model *name*, so after serving new weights under the same name, empty the cache first.

    finetune export --adapter models/heating          # models/base + models/heating -> models/merged
    transformers serve models/merged --port 8000 &    # or: vllm serve models/merged --port 8000
    finetune evaluate --domain heating --endpoint http://127.0.0.1:8000/v1 --model models/merged
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.io import atomic_path, load_jsonl, log, write_json, write_jsonl, write_text
from finetune.params import load_params, params_option


@click.command()
@click.option(
    "--domain",
    default=None,
    help="A domain of this repository: its val set, baseline, task file and params, unless given otherwise; with "
    "--endpoint, its outputs go beside the evaluate stage's (served_predictions.jsonl, metrics/served/, served.md).",
)
@click.option(
    "--model",
    "base_path",
    default="models/base",
    show_default=True,
    help="The base model directory; with --endpoint, the served model's name.",
)
# The paths below: each given, or derived from --domain (finetune.layout); dvc.yaml gives them all.
@click.option("--adapter", help="e.g. models/heating; ignored with --endpoint.")
@click.option("--val", "val_path", help="e.g. data/processed/heating/val.jsonl")
@click.option("--baseline-predictions")
@click.option("--baseline-scores")
@click.option("--predictions")
@click.option("--metrics", "metrics_path")
@click.option(
    "--timing",
    "timing_path",
    help="Where latency and throughput go, e.g. metrics/timing/eval/heating.json: no DVC output, since they differ "
    "on every run. With --endpoint they are in the served metrics too.",
)
@click.option("--report", "report_path")
@click.option("--plot", "plot_path")
@click.option("--tasks", "tasks_path", help="The task file (format checks), e.g. domains/heating/tasks.yaml.")
@click.option(
    "--questions",
    "questions_path",
    default=None,
    help="The domain's own questions (domains/heating/questions.yaml): answered by the base and the fine-tuned model, "
    "scored into the metrics' `questions` section (docs/questions.md).",
)
@click.option(
    "--question-answers",
    "question_answers",
    default=None,
    help="Where both models' answers to --questions go, e.g. data/eval/heating/questions.jsonl.",
)
@click.option(
    "--blocks",
    "blocks_path",
    default=None,
    help="The domain's blocks (data/interim/heating/blocks.jsonl): the passage a question's `source` names, shown "
    "to the judge (eval.judge).",
)
@params_option
@click.option(
    "--endpoint",
    default=None,
    metavar="URL",
    help="Ask a served model at this OpenAI-compatible URL (e.g. http://127.0.0.1:8000/v1) instead of loading one.",
)
@click.option(
    "--cache",
    "cache_dir",
    default="data/eval/endpoint_cache",
    show_default=True,
    help="With --endpoint: one file per answer, so a rerun asks only for what is missing.",
)
@click.pass_context
def cli(
    ctx,
    domain,
    base_path,
    adapter,
    val_path,
    baseline_predictions,
    baseline_scores,
    predictions,
    metrics_path,
    timing_path,
    report_path,
    plot_path,
    tasks_path,
    questions_path,
    question_answers,
    blocks_path,
    params_path,
    endpoint,
    cache_dir,
):
    """Score the fine-tuned model on val and compare with the baseline."""
    import json

    if domain:
        from finetune.layout import fill_defaults

        options = {"val_path": "val", "baseline_predictions": "baseline_predictions", "tasks_path": "tasks"}
        options |= {"baseline_scores": "baseline_scores", "adapter": "adapter"}
        if endpoint:
            options |= {"predictions": "served_predictions", "metrics_path": "served_metrics"}
            options |= {"report_path": "served_report", "plot_path": "served_plot"}
        v = fill_defaults(ctx, domain, options)
        val_path, baseline_predictions, baseline_scores, tasks_path = (
            v["val_path"], v["baseline_predictions"], v["baseline_scores"], v["tasks_path"]
        )  # fmt: skip
        adapter, predictions, metrics_path = v["adapter"], v["predictions"], v["metrics_path"]
        report_path, plot_path, params_path = v["report_path"], v["plot_path"], v["params_path"]
    paths = {"--val": val_path, "--baseline-predictions": baseline_predictions, "--baseline-scores": baseline_scores}
    paths |= {"--predictions": predictions, "--metrics": metrics_path, "--report": report_path, "--plot": plot_path}
    paths |= {"--tasks": tasks_path} | ({} if endpoint else {"--adapter": adapter})
    missing = [name for name, value in paths.items() if value is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}: give them, or --domain NAME for a domain's files")
    if questions_path and not question_answers and not endpoint:
        raise click.UsageError("--questions needs --question-answers PATH: where both models' answers go")

    from finetune.evaluation.metrics import delta, score
    from finetune.evaluation.report import chart, markdown, plot_rows
    from finetune.generation.taskfile import load

    params = load_params(params_path)
    tasks = load(tasks_path)
    examples = load_jsonl(val_path)
    refusal = params.generate.refusal
    qexamples = None
    if questions_path:
        from finetune.evaluation import questions

        # Loaded before any model: a bad entry stops at once, with its line.
        qexamples = questions.examples(questions.load(questions_path), params.generate.system_prompt, refusal)
        if not qexamples:
            log("evaluate", f"{questions_path}: no questions yet; write your users' own (docs/questions.md)")
    rewordings = []
    if params.generate.teacher.endpoint and not endpoint:
        from finetune.evaluation import reworded

        # With a teacher: val's questions in words no training example has (finetune/evaluation/reworded.py).
        prefixes = {name: task.prefix for name, task in tasks.tasks.items()}
        originals, rewordings = reworded.reword(examples, params.generate, prefixes)
    if endpoint:
        if qexamples:
            log("evaluate", "--endpoint: the questions need the base model beside it; they are left out here")
            qexamples = None
        if ctx.get_parameter_source("base_path") is click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--endpoint needs --model NAME: the model name the server answers to")
        from finetune.evaluation.predict import endpoint_predict

        rows, timing = endpoint_predict(endpoint, base_path, examples, params.eval, refusal, cache_dir, tasks)
    else:
        from peft import PeftModel

        from finetune.evaluation.predict import predict
        from finetune.training.models import check_safetensors, load_base, load_tokenizer

        tokenizer = load_tokenizer(adapter, params.model.trust_remote_code)
        # One load for both models: the base answers the questions (val's base answers come from the baseline
        # stage, which must not depend on the question file), then the adapter is merged into it.
        model = load_base(base_path, params.model)
        if qexamples:
            base_q = questions.answer(model, tokenizer, qexamples, params.eval, refusal, "base (questions)", tasks)
        if rewordings:
            base_r, _ = predict(model, tokenizer, rewordings, params.eval, refusal, "base (reworded val)", tasks)
        # load_merged's merge, on the base already loaded (finetune/training/models.py is left alone: every
        # training stage depends on it).
        check_safetensors(adapter)
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        rows, timing = predict(model, tokenizer, examples, params.eval, refusal, "fine-tuned", tasks)
        if rewordings:
            tuned_r, _ = predict(
                model, tokenizer, rewordings, params.eval, refusal, "fine-tuned (reworded val)", tasks
            )
        if qexamples:
            tuned_q = questions.answer(
                model, tokenizer, qexamples, params.eval, refusal, "fine-tuned (questions)", tasks
            )
    baseline = json.loads(Path(baseline_scores).read_text(encoding="utf-8"))
    finetuned = score(rows)
    result = {"baseline": baseline, "finetuned": finetuned, "delta": delta(finetuned, baseline)}
    if rewordings:
        tuned_by_id = {r["id"]: r for r in rows}
        result["reworded"] = reworded.section([tuned_by_id[o["id"]] for o in originals], base_r, tuned_r)
        log(
            "evaluate",
            f"val reworded by the teacher ({len(rewordings)}): rouge_l "
            f"{result['reworded']['finetuned']['rouge_l']:.3f}, {result['reworded']['gap']['rouge_l']:+.3f} below val's",
        )
    judge = params.eval.judge
    if judge.endpoint and judge.val:
        from finetune.evaluation.judge import grade

        base_val = load_jsonl(baseline_predictions)
        result["judge"] = {
            "baseline": grade(base_val, judge, "evaluate", "val answers (base)"),
            "finetuned": grade(rows, judge, "evaluate", "val answers (fine-tuned)"),
        }
    if qexamples:
        judged = None
        if judge.endpoint:
            from finetune.evaluation.judge import grade, passages

            sources = passages(load_jsonl(blocks_path), judge.max_passage_chars) if blocks_path else {}
            judged = {
                "baseline": grade(base_q, judge, "evaluate", "question answers (base)", sources),
                "finetuned": grade(tuned_q, judge, "evaluate", "question answers (fine-tuned)", sources),
            }
        # First in the file: what a user asks before what our templates ask.
        result = {"questions": questions.section(base_q, tuned_q, result, judged)} | result
        write_jsonl(question_answers, questions.side_by_side(qexamples, base_q, tuned_q))
    elif question_answers and qexamples is not None:
        write_jsonl(question_answers, [])  # a DVC out: there, and empty, until the domain has questions
    # Latency differs on every run, so a DVC run keeps it out of every output (same inputs, same bytes, a clean
    # `git status`); a served model's metrics are no DVC output, and its latency is what they are read for.
    if endpoint:
        for group, figures in timing.items():
            finetuned[group].update(figures)
    if timing_path:
        write_json(timing_path, timing)

    write_jsonl(predictions, rows)
    write_json(metrics_path, result)
    write_text(plot_path, "\n".join(plot_rows(result)) + "\n")
    report = Path(report_path)
    png = report.with_suffix(".png")
    with atomic_path(png) as tmp:
        chart(result, tmp)
    write_text(
        report, markdown(result, load_jsonl(baseline_predictions), rows, params.eval.examples_per_task, png.name)
    )
    if qexamples:
        q = result["questions"]
        log(
            "evaluate",
            f"questions ({q['n']}): rouge_l {q['finetuned']['rouge_l']:.3f} (base {q['baseline']['rouge_l']:.3f}), "
            f"val's is {q['template_gap']['rouge_l']:+.3f} higher",
        )
    o, d = finetuned["overall"], result["delta"]["overall"]
    log(
        "evaluate",
        f"rouge_l {o['rouge_l']:.3f} ({d['rouge_l']:+.3f} vs base), "
        f"exact_match {o['exact_match']:.3f} ({d['exact_match']:+.3f})",
    )
