"""`finetune chat`: ask the fine-tuned model your own questions, as evaluate asks it the val questions.

Same chat template (the adapter's tokenizer), same system prompt (generate.system_prompt), same greedy decoding and
answer length (eval.max_new_tokens), same generation code as the evaluate stage. Each question is asked on its own,
as in training: no earlier turns are sent.

    finetune chat --domain heating                 # models/base + models/heating; type questions, Ctrl-D ends
    finetune chat --domain heating --compare --task SPEC   # the untuned base's answer beside, [SPEC] prefix
    printf 'CA-24C rated output?\\n' | finetune chat --domain heating --json   # one question per line, JSON out
    finetune chat --endpoint http://127.0.0.1:8000/v1 --model heating --compare --base-name base

With --endpoint the answers come from a served model (vLLM `--lora-modules heating=models/heating`, `transformers
serve`, any OpenAI-compatible API) with the eval section's retry and timeout settings.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Callable

import click

from finetune.params import Eval, Generate, load_params, params_option

Answerer = Callable[[list[dict]], str]


def question_messages(question: str, gparams: Generate, prefix: str = "") -> list[dict]:
    """The prompt as generate builds it for training: the system prompt, then the task prefix and the question."""
    prefix = prefix + " " if prefix else ""
    return [{"role": "system", "content": gparams.system_prompt}, {"role": "user", "content": prefix + question}]


def local_answerer(model_dir: str, adapter: str | None, params) -> Answerer:
    """Base + adapter merged (as evaluate loads it) or, with adapter None, the base alone (as baseline does)."""
    from finetune.evaluation.inference import generate
    from finetune.training.models import load_base, load_merged, load_tokenizer

    trust = params.model.trust_remote_code
    if adapter is None:
        tokenizer, model = load_tokenizer(model_dir, trust), load_base(model_dir, params.model)
    else:
        tokenizer, model = load_tokenizer(adapter, trust), load_merged(model_dir, adapter, params.model)

    def answer(messages: list[dict]) -> str:
        return generate(model, tokenizer, [messages], 1, params.eval.max_new_tokens, "", progress=False)[0][
            "prediction"
        ]

    return answer


def endpoint_answerer(url: str, name: str, eparams: Eval) -> Answerer:
    """Greedy and as long as evaluate --endpoint asks; stripped as evaluate strips it. Nothing is cached: a chat
    is asked live."""
    from finetune.serving.endpoint import Client, chat_body

    client = Client.from_params(url, eparams, None, stage="chat", section="eval")

    def answer(messages: list[dict]) -> str:
        body = chat_body(name, messages, temperature=0, max_tokens=eparams.max_new_tokens)
        return client.ask(body).content.strip()

    return answer


def beside(columns: dict[str, str], width: int) -> str:
    """Answers in side-by-side columns under their titles, each line wrapped to its column, line breaks kept."""
    gap = " │ "
    colw = max(20, (width - len(gap) * (len(columns) - 1)) // len(columns))
    wrapped = []
    for title, text in columns.items():
        lines = [title, "─" * min(colw, max(len(title), 8))]
        for line in (text or "(empty answer)").splitlines() or [""]:
            lines += textwrap.wrap(line, colw, replace_whitespace=False) or [""]
        wrapped.append(lines)
    height = max(len(c) for c in wrapped)
    rows = []
    for i in range(height):
        cells = [(c[i] if i < len(c) else "").ljust(colw) for c in wrapped]
        rows.append(gap.join(cells).rstrip())
    return "\n".join(rows)


def questions(interactive: bool):
    """Lines typed at a prompt, or read from stdin when it is a pipe or a file (blank lines skipped)."""
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        while True:
            try:
                line = input("you> ")
            except EOFError:
                click.echo(file=sys.stderr)
                return
            if line.strip() in ("exit", "quit"):
                return
            if line.strip():
                yield line.strip()
    else:
        for line in sys.stdin:
            if line.strip():
                yield line.strip()


@click.command("chat")
@click.option(
    "--domain",
    default=None,
    help="A domain of this repository: its adapter (models/NAME), task file and params, unless given otherwise.",
)
@click.option(
    "--model",
    "model",
    default="models/base",
    show_default=True,
    help="The base model directory; with --endpoint, the served (fine-tuned) model's name.",
)
@click.option("--adapter", default=None, help="e.g. models/heating; ignored with --endpoint.")
@click.option("--compare", is_flag=True, help="Also ask the untuned base model and print its answer beside.")
@click.option("--task", default=None, help="Put this task's prefix (from the task file) before every question.")
@click.option("--tasks", "tasks_path", default=None, help="The task file (with --task).")
@click.option("--endpoint", default=None, metavar="URL", help="Ask a served model at this OpenAI-compatible URL.")
@click.option("--base-name", default=None, help="With --endpoint --compare: the served base model's name.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per answer on stdout, for scripts.")
@params_option
@click.pass_context
def cli(ctx, domain, model, adapter, compare, task, tasks_path, endpoint, base_name, as_json, params_path):
    """Ask the fine-tuned model questions: typed at a prompt, or one per line from stdin."""
    if domain:
        from finetune.layout import fill_defaults

        v = fill_defaults(ctx, domain, {"adapter": "adapter", "tasks_path": "tasks"})
        adapter, tasks_path, params_path = v["adapter"], v["tasks_path"], v["params_path"]
    if task is not None and tasks_path is None:
        raise click.UsageError("--task needs the task file: --domain NAME or --tasks PATH")
    params = load_params(params_path)
    prefix = ""
    if task is not None:
        from finetune.generation.taskfile import load

        known = load(tasks_path).tasks
        if task not in known:
            raise click.BadParameter(f"{task!r} is not a task of {tasks_path} ({', '.join(known)})")
        prefix = known[task].prefix
    if adapter is None and not endpoint:
        raise click.UsageError("give --domain NAME (or --adapter PATH): which adapter to ask")
    answerers: dict[str, Answerer] = {}
    if endpoint:
        if ctx.get_parameter_source("model") is click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--endpoint needs --model NAME: the model name the server answers to")
        if compare and not base_name:
            raise click.UsageError("--endpoint --compare needs --base-name NAME: the served base model's name")
        if compare:
            answerers["base"] = endpoint_answerer(endpoint, base_name, params.eval)
        answerers["fine-tuned"] = endpoint_answerer(endpoint, model, params.eval)
    else:
        if compare:
            answerers["base"] = local_answerer(model, None, params)
        answerers["fine-tuned"] = local_answerer(model, adapter, params)

    interactive = sys.stdin.isatty()
    if interactive:
        source = endpoint or adapter
        click.echo(f"Asking {source}. One question per line; Ctrl-D or 'exit' ends.", err=True)
    for question in questions(interactive):
        messages = question_messages(question, params.generate, prefix)
        answers = {label: ask(messages) for label, ask in answerers.items()}
        if as_json:
            record = {"question": messages[-1]["content"], "answer": answers["fine-tuned"]}
            if "base" in answers:
                record["base_answer"] = answers["base"]
            click.echo(json.dumps(record, ensure_ascii=False))
        elif compare:
            click.echo(beside(answers, shutil.get_terminal_size((100, 24)).columns) + "\n")
        else:
            click.echo(answers["fine-tuned"] + "\n")
