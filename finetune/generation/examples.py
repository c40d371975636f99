"""Blocks -> chat examples, task by task as the task file (tasks.yaml) declares them.

Every example is {id, task, source, block_id, messages, meta}: a system prompt, the user question with its task
prefix (`[SPEC] …`), and the answer built from the block. Phrasings are chosen by a seeded RNG keyed on the fact,
so adding a block never changes the phrasing of another.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter
from pathlib import Path

from finetune.generation import languages
from finetune.generation.builders import (
    BUILDER_OF_KIND,
    BUILDERS,
    Item,
    code_sections,
    conversation,
    heading_fields,
    headings,
    selects,
    sentences,
)
from finetune.generation.taskfile import Task, TaskFile, enabled
from finetune.io import InputError, content_id
from finetune.params import Generate

_PLACEHOLDER = re.compile(r"\{(\w*)\}|\{\{|\}\}")
# A space left before a closing mark by an empty field; not before a name that starts with one (".width").
_SPACE_BEFORE = re.compile(r"\s+([?.,:;!)])(?![\w(])")


def render(template: str, fields: dict, taskfile: TaskFile, where: str, source: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        if m.group(1) not in fields:
            known = ", ".join(sorted(k for k in fields if not k.endswith("_lc")))
            raise InputError(taskfile.path, f"{where}: {{{m.group(1)}}} is not a field of {source} (fields: {known})")
        return str(fields[m.group(1)])

    return _PLACEHOLDER.sub(sub, template)


# A bracketed group with one placeholder, "({parent})" or "(\"{part}\")", is optional: it vanishes when empty.
_OPTIONAL = re.compile(r"\s*\([^(){}]*\{(\w+)\}[^(){}]*\)")


def question_text(template: str, item: Item, taskfile: TaskFile, where: str, source: str) -> str:
    """A question from its phrasing: a cell ending a sentence loses its full stop mid-question, and an empty
    optional group leaves no double space or empty brackets behind."""
    # A heading that is a question itself ("What do I need?") loses its mark too: the phrasing ends the question.
    fields = {k: v.rstrip(" .:;?？") if isinstance(v, str) else v for k, v in item.fields.items()}
    # A group whose value another placeholder of the phrasing says already vanishes too: "What is X in {document}
    # ({heading})?" of a glossary that is the document's own title section.
    said = {str(fields.get(n, "")).casefold() for n in re.findall(r"\{(\w+)\}", _OPTIONAL.sub("", template))}

    def optional(m: re.Match) -> str:
        value = fields.get(m.group(1))
        return "" if value == "" or (isinstance(value, str) and value.casefold() in said) else m.group(0)

    template = _OPTIONAL.sub(optional, template)
    text = " ".join(render(template, fields, taskfile, where, source).split())
    return _SPACE_BEFORE.sub(r"\1", text)


@functools.lru_cache(maxsize=1024)
def _required(question: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\{(\w+)\}", _OPTIONAL.sub("", question)))


def eligible(questions: list[str], fields: dict) -> list[int]:
    """Phrasings whose placeholders all have a value, but for optional (bracketed) ones: a phrasing built on a code
    block's lead is not used for a block without one. None eligible: all."""
    ok = [n for n, q in enumerate(questions) if all(fields.get(name, "x") != "" for name in _required(q))]
    return ok or list(range(len(questions)))


def example(task: str, source: str, block_id: str, messages: list[dict], meta: dict) -> dict:
    # The id hashes every turn but the system prompt: for one question and answer it is (task, source, q, a).
    turns = [m["content"] for m in messages if m["role"] != "system"]
    return {
        "id": content_id(task, source, *turns),
        "task": task,
        "source": source,
        "block_id": block_id,
        "messages": messages,
        "meta": meta,
    }


def keypoints(task: Task, item: Item, answer: str) -> dict:
    if task.keypoints == "items":
        return {"keypoints": list(item.points) or sentences(answer)}
    if task.keypoints == "sentences":
        return {"keypoints": sentences(answer)}
    return {}


def phrasings(task: Task, block: dict, taskfile: TaskFile) -> tuple[str, list[str]] | None:
    """(task-file key, questions) that ask about `block` in its own language; None when the task has none in it.
    A conversation's questions are its user's own words, in whatever language they wrote."""
    if not taskfile.languages or task.builder == "conversation":
        return "questions", task.questions
    text = " ".join([*headings(block), block.get("text", "")])
    return taskfile.questions(task, languages.detect(text, languages.word_sets(taskfile.languages)))


def examples_for(
    name: str, task: Task, block: dict, gparams: Generate, taskfile: TaskFile, max_seq_len: int | None = None
) -> list[dict]:
    """`max_seq_len` (model.max_seq_len) bounds a conversation's history to what could fit (builders.conversation)."""
    asked = phrasings(task, block, taskfile)
    if asked is None:  # a block in a language the task has no phrasings for: left out (generate counts it)
        return []
    key, questions = asked
    out = []
    items = (
        conversation(block, task, max_seq_len)
        if task.builder == "conversation"
        else BUILDERS[task.builder](block, task)
    )
    for i, item in enumerate(items):
        rng = random.Random(f"{gparams.seed}|{name}|{block['id']}|{i}")
        choices = eligible(questions, item.fields)
        k = min(gparams.phrasings_per_item, len(choices))
        if task.answer is not None:
            answer = render(task.answer, item.fields, taskfile, f"tasks.{name}.answer", block["source"]).strip()
        else:
            answer = item.answer.strip()
        if not answer:
            continue
        meta = item.meta | keypoints(task, item, answer)
        own = item.system is not None and not gparams.override_system_prompt
        system = {"role": "system", "content": item.system if own else gparams.system_prompt}
        history = [
            {"role": m["role"], "content": f"{task.prefix} {m['content']}" if m["role"] == "user" else m["content"]}
            for m in item.history
        ]
        for n in rng.sample(choices, k):
            where = f"tasks.{name}.{key}[{n}]"
            if task.builder == "conversation":  # the user's own words, as written
                question = render(questions[n], item.fields, taskfile, where, block["source"])
            else:
                question = question_text(questions[n], item, taskfile, where, block["source"])
            messages = [system, *history, {"role": "user", "content": f"{task.prefix} {question}"}]
            messages.append({"role": "assistant", "content": answer})
            out.append(example(name, block["source"], block["id"], messages, meta))
    return out


def refusals(name: str, task: Task, gparams: Generate, taskfile: TaskFile) -> list[dict]:
    """One example per out-of-domain question of the task file, answered with generate.refusal."""
    out = []
    asked = [*task.questions, *(q for qs in task.phrasings.values() for q in qs)]  # refused in every language
    for i, question in enumerate(asked):
        source = f"{Path(taskfile.path).name}#{name.lower()}={i + 1}"
        messages = [
            {"role": "system", "content": gparams.system_prompt},
            {"role": "user", "content": f"{task.prefix} {' '.join(question.split())}"},
            {"role": "assistant", "content": gparams.refusal},
        ]
        out.append(example(name, source, content_id("refusal", question), messages, {"refusal": gparams.refusal}))
    return out


def claimed_paths(blocks: list[dict], tasks: dict[str, Task]) -> set[str]:
    """Heading paths some corpus-specific (non-fallback) task reads: the generic tasks leave them alone."""
    specific = [t.blocks for t in tasks.values() if t.blocks is not None and not t.blocks.fallback]
    return {" / ".join(headings(b)) for b in blocks if any(selects(b, s) for s in specific)}


def blocks_read(blocks: list[dict], tasks: dict[str, Task]) -> dict[str, list[dict]]:
    """The blocks each task reads, in file order: those its `blocks` selects, less (for a fallback task) those under
    a heading path a corpus-specific task reads. The teacher's pairs read the same blocks as the rules."""
    claimed = claimed_paths(blocks, tasks)
    read: dict[str, list[dict]] = {}
    for name, task in tasks.items():
        if task.blocks is None:  # refusal: no blocks
            read[name] = []
            continue
        read[name] = [
            b
            for b in blocks
            if selects(b, task.blocks) and not (task.blocks.fallback and " / ".join(headings(b)) in claimed)
        ]
    return read


def unread_kinds(blocks: list[dict], taskfile: TaskFile) -> dict[str, tuple[int, str]]:
    """Each block kind that no task of the task file selects: (how many blocks, the task that would read them). A
    kind some task selects is left alone, listed in generate.tasks or not: leaving a task out is a choice, a task
    file with no conversation task for a folder of chat files is a mistake nothing else would show."""
    selected = {kind for t in taskfile.tasks.values() if t.blocks is not None for kind in t.blocks.kind}
    counts = Counter(b["kind"] for b in blocks if b["kind"] not in selected)
    return {
        kind: (n, f"add a {BUILDER_OF_KIND[kind]} task (blocks: {{kind: {kind}}}) to {taskfile.path}")
        for kind, n in sorted(counts.items())
    }


def left_out_language(blocks: list[dict], gparams: Generate, taskfile: TaskFile, params_source: str = "params.yaml"):
    """How many (task, block) pairs were left out because the block's language has no phrasings in the task."""
    tasks = enabled(taskfile, gparams.tasks, params_source)
    read = blocks_read(blocks, tasks)
    return sum(phrasings(task, b, taskfile) is None for name, task in tasks.items() for b in read[name])


def run(
    blocks: list[dict],
    gparams: Generate,
    taskfile: TaskFile,
    params_source: str = "params.yaml",
    max_seq_len: int | None = None,
) -> list[dict]:
    """Every enabled task's examples, task by task in generate.tasks order (build's, without its counts)."""
    return build(blocks, gparams, taskfile, params_source, max_seq_len)[0]


def build(
    blocks: list[dict],
    gparams: Generate,
    taskfile: TaskFile,
    params_source: str = "params.yaml",
    max_seq_len: int | None = None,
) -> tuple[list[dict], dict]:
    """(examples, counts): every enabled task's examples, task by task in generate.tasks order, each question
    about a heading that several documents share naming its document, and no question with two answers
    (unambiguous; counts: `named_document`, `dropped_ambiguous`); max_seq_len: see examples_for."""
    tasks = enabled(taskfile, gparams.tasks, params_source)
    read = blocks_read(blocks, tasks)
    examples = []
    for name, task in tasks.items():
        if task.builder == "refusal":
            examples += refusals(name, task, gparams, taskfile)
            continue
        for block in code_sections(read[name]) if task.builder == "code" else read[name]:
            examples += examples_for(name, task, block, gparams, taskfile, max_seq_len)
    # Two phrasings can coincide after formatting (e.g. "{question}"): keep one of each id.
    seen, unique = set(), []
    for e in examples:
        if e["id"] not in seen:
            seen.add(e["id"])
            unique.append(e)
    return unambiguous(unique, blocks, gparams.name_document, gparams.name_documents == "all")


def _norm(text: str) -> str:
    # As finetune.generation.quality counts `ambiguous`: case, spacing and the closing mark do not tell two apart.
    return " ".join(text.split()).casefold().rstrip(" .?!:;。？！")


def _file(source: str) -> str:
    return source.split("#", 1)[0]


def shared_headings(blocks: list[dict]) -> set[str]:
    """Block ids whose own heading (casefolded) is a heading of blocks of more than one file: "Description" in two
    boards' datasheets. A question about such a block means nothing until it says which document."""
    files: dict[str, set[str]] = {}
    for b in blocks:
        if hs := headings(b):
            files.setdefault(hs[-1].casefold(), set()).add(_file(b.get("source", "")))
    return {b["id"] for b in blocks if (hs := headings(b)) and len(files[hs[-1].casefold()]) > 1}


def _ask(e: dict) -> tuple:
    """What an example asks: every turn before the answer (the system prompt aside), normalised."""
    return tuple(_norm(m["content"]) for m in e["messages"][:-1] if m["role"] != "system")


def says(text: str, name: str) -> bool:
    """Whether `text` says `name` as words (any case): the man page "ul" is not named by "should", nor "ca" by
    "Can you explain OPTIONS?"."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def name_in_question(e: dict, document: str, pattern: str, product: str = "") -> dict:
    """The example with its question naming its document by `pattern` ({question}, {document}); the question's
    closing mark stays at its end. A question that names it already, or says `product` as a word, is left as it is."""
    *turns, question, answer = e["messages"]
    text = question["content"]
    if not document or says(text, document) or (product and says(text, product)):
        return e
    body = text.rstrip(" ?!.:;。？！")
    text = pattern.replace("{question}", body).replace("{document}", document) + text[len(body) :].strip()
    messages = [*turns, {**question, "content": text}, answer]
    return example(e["task"], e["source"], e["block_id"], messages, e["meta"])


def unambiguous(
    examples: list[dict], blocks: list[dict], pattern: str, every: bool = False
) -> tuple[list[dict], dict]:
    """(examples, counts). A question about a heading several documents share, or about a section at a document's
    top that is not its title (every: any question of a domain of two or more documents), names its document
    (`pattern`: generate.name_document); then the same question with different answers names its document too;
    what is still
    the same question with different answers (two sections of one document, two documents of one name) is dropped,
    every copy of it, so neither train nor val learns a guess. Refusals and imported conversations' system
    prompts aside, the question is every turn before the answer."""
    by_id = {b["id"]: b for b in blocks}
    document = {i: heading_fields(b, None)["document"] for i, b in by_id.items()}
    # A section at a document's top with a heading of its own ("Abstract", a man page's "OPTIONS") has no parent
    # to say whose it is: its question names the document as a shared heading's does.
    top = {i for i, b in by_id.items() if len(hs := headings(b)) == 1 and hs[0].casefold() != document[i].casefold()}
    shared = shared_headings(blocks) | top
    product: dict[str, str] = {}  # block id -> its document's product word, where it has one
    if every and len({_file(b.get("source", "")) for b in by_id.values() if b.get("kind") != "qa"}) > 1:
        # A user's own words in an imported conversation (kind qa) stay as they were written.
        every_id = {i for i, b in by_id.items() if b.get("kind") != "qa"}
        # "What does the --force option of `quarry add` do?" says which of "Quarry CLI reference" and "MB-10 motor
        # board" it means: a document name's first word that no other document's name starts with is its product.
        # Only here: a shared heading's question needs the whole name ("Talvik TB-210 …" and "Talvik TB-330 …").
        first = {i: (document[i].split() or [""])[0] for i in every_id}
        starts = Counter(w.casefold() for w in {document[i]: first[i] for i in every_id}.values())
        product = {i: w for i, w in first.items() if len(w) >= 3 and starts[w.casefold()] == 1 and i not in shared}
        shared |= every_id
    named: set[str] = set()  # ids of the examples whose question now names its document

    def name(e: dict) -> dict:
        renamed = name_in_question(e, document.get(e["block_id"], ""), pattern, product.get(e["block_id"], ""))
        if renamed is not e:
            named.add(renamed["id"])
        return renamed

    out, dropped = [name(e) if e["block_id"] in shared else e for e in examples], 0
    for attempt in ("name", "drop"):
        answers: dict[tuple, set[str]] = {}
        for e in out:
            answers.setdefault(_ask(e), set()).add(_norm(e["messages"][-1]["content"]))
        clash = {q for q, a in answers.items() if len(a) > 1}
        if not clash:
            break
        if attempt == "name":
            out = [name(e) if _ask(e) in clash and e["block_id"] in by_id else e for e in out]
        else:
            kept = [e for e in out if _ask(e) not in clash]
            out, dropped = kept, len(out) - len(kept)
    counts = {"named_document": sum(e["id"] in named for e in out), "dropped_ambiguous": dropped}
    return out, counts


def merge_duplicates(examples: list[dict]) -> tuple[list[dict], int]:
    """(examples, how many were merged): of examples with the same task and the same messages, only the first (in
    file order) stays. The same record in two files (a chat export copied twice, a page in two manuals) has two
    sources, so the split could put one copy in train and the other in val; validate would stop on it."""
    seen: set[str] = set()
    kept = []
    for e in examples:
        key = json.dumps([e["task"], e["messages"]], ensure_ascii=False, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(e)
    return kept, len(examples) - len(kept)


def merge_boilerplate(examples: list[dict], min_words: int) -> tuple[list[dict], int]:
    """(examples, how many were merged): an answer of at least min_words words that a task gave, word for word (case
    and spacing aside), for an earlier document is boilerplate (a legal notice, a certification, the same paragraph
    in every board's datasheet): only the first document's examples of it stay, every phrasing of them. A shorter
    answer ("3.3 V") repeats as a fact of each document."""
    first: dict[tuple[str, str], str] = {}
    kept = []
    for e in examples:
        answer = next((m["content"] for m in reversed(e["messages"]) if m["role"] == "assistant"), "")
        words = answer.casefold().split()
        document = e["source"].split("#", 1)[0]
        if len(words) >= min_words and first.setdefault((e["task"], " ".join(words)), document) != document:
            continue
        kept.append(e)
    return kept, len(examples) - len(kept)
