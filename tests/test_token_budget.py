"""Parts cut to the base model's token budget (generate --model, finetune/generation/budget.py) and asked by what
they say (finetune/documents/parts.py): the first `dvc repro` of real documents must not stop on overlong examples,
and no two parts of one section may share a question."""

from __future__ import annotations

import json
import re

import pytest

from finetune.documents.parts import cut_lines, cut_text, part_label, part_labels
from finetune.documents.sections import block, section_block
from finetune.generation.budget import fit
from finetune.generation.examples import build
from finetune.generation.taskfile import load
from finetune.io import load_jsonl, write_jsonl
from finetune.training.models import load_tokenizer
from finetune.validation.frames import count_tokens
from stages.generate import cli
from tests.conftest import REPO, assert_ok, invoke, repo_params, typed, write_params
from tests.test_validate import save_tiny_tokenizer

CLI_TASKS = REPO / "domains/cli_tool/tasks.yaml"
DOC = "docs/sync.md"
HEADINGS = ["Tallow sync reference", "Mirroring"]
PROSE = [
    "**Remotes** are named once and used by name. A remote holds a URL and the key that signs its pushes.",
    "The mirror walks every branch in order and copies what the remote lacks, newest commits first.",
    "Retries back off twice as long each time, up to the limit the configuration gives for the remote.",
    "Conflicts stop the mirror for that branch only; the other branches carry on and are reported at the end.",
]
CODE = "\n".join(f"tallow mirror --remote r{i} --branch b{i} --depth {i}  # copy branch b{i}" for i in range(60))


def long_section() -> dict:
    """A section of prose around a 60-line code block led in by a sentence ending in a colon."""
    text = "\n\n".join([*PROSE[:2], f"Mirror every branch of sixty remotes:\n\n```sh\n{CODE}\n```", *PROSE[2:]] * 2)
    return block(f"{DOC}#h=Mirroring", "section", " / ".join(HEADINGS), text, HEADINGS, items=[], document="Tallow")


def long_code() -> dict:
    fenced = f"```sh\n{CODE}\n```"
    b = block(f"{DOC}#h=Mirroring", "code", " / ".join(HEADINGS), fenced, HEADINGS, code=CODE, language="sh")
    return b | {"lead": "Mirror every branch of sixty remotes:", "document": "Tallow"}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return save_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def lengths(examples, tokenizer_dir):
    return count_tokens(load_tokenizer(tokenizer_dir), [e["messages"] for e in examples])[0]


def run_generate(tmp_path, blocks, model=None):
    params = repo_params()
    params["generate"] |= {"tasks": ["SECTION", "CODE"], "phrasings_per_item": 3}
    write_jsonl(tmp_path / "blocks.jsonl", blocks)
    args = ["--input", tmp_path / "blocks.jsonl", "--output", tmp_path / "examples.jsonl", "--tasks", CLI_TASKS]
    args += ["--metrics", tmp_path / "generate.json", "--params", write_params(tmp_path / "params.yaml", params)]
    result = invoke(cli, [*args, *(["--model", model] if model else [])])
    assert_ok(result)
    return load_jsonl(tmp_path / "examples.jsonl"), json.loads((tmp_path / "generate.json").read_text()), result


def test_without_the_model_a_long_section_and_its_code_come_out_over_max_seq_len(tmp_path, tokenizer_dir):
    # What validate stopped the first `dvc repro` of real documents on: the case the budget is for.
    examples, metrics, _ = run_generate(tmp_path, [long_section(), long_code()])
    assert max(lengths(examples, tokenizer_dir)) > repo_params()["model"]["max_seq_len"]
    assert "cut_to_fit" not in metrics


def test_with_the_model_no_example_is_over_max_seq_len_and_nothing_is_lost(tmp_path, tokenizer_dir):
    examples, metrics, result = run_generate(tmp_path, [long_section(), long_code()], tokenizer_dir)
    max_seq_len = repo_params()["model"]["max_seq_len"]
    assert max(lengths(examples, tokenizer_dir)) <= max_seq_len
    assert metrics["cut_to_fit"] >= 2 and metrics["dropped_over_budget"] == 0
    assert "over model.max_seq_len" in result.output
    answers = "\n".join(e["messages"][-1]["content"] for e in examples)
    # Every prose sentence and every line of code is still answered somewhere: cut, not truncated.
    assert all(p.replace("**", "") in answers.replace("**", "") for p in PROSE)
    assert all(line in answers for line in CODE.splitlines())


def test_a_cut_code_block_keeps_whole_lines_each_piece_fenced_and_led_in(tmp_path, tokenizer_dir):
    examples, _, _ = run_generate(tmp_path, [long_section(), long_code()], tokenizer_dir)
    code_lines = set(CODE.splitlines())
    for e in examples:
        answer = e["messages"][-1]["content"]
        assert answer.count("```") % 2 == 0, answer  # every fence opened is closed
        assert not answer.rstrip().endswith(":"), answer  # no part ends on its lead-in
        for fence in re.findall(r"```sh\n(.*?)\n```", answer, re.DOTALL):
            assert set(fence.splitlines()) <= code_lines  # cut between lines, never inside one
    code_answers = [e["messages"][-1]["content"] for e in examples if e["task"] == "CODE"]
    assert len(code_answers) > 1 and all(a.startswith("Mirror every branch") for a in code_answers)


def test_the_parts_of_a_cut_section_never_share_a_question(tmp_path, tokenizer_dir):
    examples, metrics, _ = run_generate(tmp_path, [long_section(), long_code()], tokenizer_dir)
    answers: dict[str, set[str]] = {}
    for e in examples:
        answers.setdefault(e["messages"][-2]["content"], set()).add(e["messages"][-1]["content"])
    assert all(len(a) == 1 for a in answers.values())
    assert metrics["dropped_ambiguous"] == 0
    assert not [q for q in answers if re.search(r"\(part \d+\)", q)]


def test_fit_stops_when_nothing_is_over_and_leaves_short_blocks_alone(tokenizer_dir):
    short = block(f"{DOC}#h=Intro", "section", "Tallow sync reference / Intro", PROSE[0] + " " + PROSE[1], HEADINGS)
    params = typed(repo_params()).generate.model_copy(update={"tasks": ["SECTION"]})
    taskfile = load(CLI_TASKS)
    blocks, examples, _, counts = fit(
        [short], lambda bs: build(bs, params, taskfile), load_tokenizer(tokenizer_dir), 4096
    )
    assert blocks == [short] and counts == {"cut_to_fit": 0, "dropped_over_budget": 0} and examples


def test_a_part_is_named_by_its_bold_lead_else_its_first_clause_else_its_first_line_of_code():
    assert part_label("**Proxies** are read from the environment.") == "Proxies"
    assert part_label("- Retries back off, twice as long each time.") == "Retries back off"
    assert part_label("```sh\n# copy one branch\ntallow mirror\n```") == "copy one branch"
    assert part_label("One two three four five six seven eight.") == "One two three four five six…"
    assert part_label("Or, asynchronously:\n\n```python\nimport asyncio\n```") == "Or, asynchronously"
    # A part cut between the wrapped lines of a sentence is named from its next whole sentence.
    assert part_label("policy as well.\nThe mirror keeps\nevery branch.") == "The mirror keeps every branch"
    assert part_label("zum Umspringen\n\nDer Spiegel hält\njeden Zweig.") == "Der Spiegel hält jeden Zweig"
    assert (
        part_label("bestimmt usw. sein). Die Variable\nCOLUMNS legt sie fest.") == "Die Variable COLUMNS legt sie fest"
    )
    assert part_label("```js\n]\n{'id'\nconsole.log(total, count)\n```") == "console.log(total, count)"
    assert part_label("cmd)\n") == "cmd"


def test_the_first_part_is_asked_as_the_section_and_later_parts_apart_from_each_other():
    assert part_labels(["Start.", "Same words here.", "Same words here.", ""]) == [
        "",
        "Same words here",
        "Same words here 3",
        "4",
    ]


def test_extract_labels_each_part_of_a_long_section():
    text = "\n\n".join(PROSE)
    parts = section_block(f"{DOC}#h=Mirroring", "Mirroring", HEADINGS, text, [], 120)
    assert [p["part"] for p in parts] == ["", "The mirror walks every branch in…", "Retries back off twice as long…",
                                          "Conflicts stop the mirror for that…"]  # fmt: skip


def test_a_fence_over_budget_is_cut_between_its_lines_with_its_language_on_every_piece():
    text = f"Run it:\n\n```sh\n{CODE}\n```\n\nThat is all."
    *pieces, after = cut_text(text, 400)
    assert len(pieces) > 2 and pieces[0].startswith("Run it:\n\n```sh\n") and after == "That is all."
    assert all(p.count("```sh\n") == 1 and p.count("```") == 2 for p in pieces)
    assert "\n".join(re.search(r"```sh\n(.*?)\n```", p, re.DOTALL).group(1) for p in pieces) == CODE
    assert all(len(p) <= 400 for p in pieces)


def test_what_no_cut_can_fit_is_left_out_and_counted_so_validate_does_not_stop(tmp_path, tokenizer_dir):
    # One line of code is never cut inside: a line longer than the whole budget cannot be made to fit.
    line = "tallow mirror " + " ".join(f"--remote=r{i}" for i in range(300))
    one = block(f"{DOC}#h=Long line", "code", "Tallow sync reference / Long line", f"```sh\n{line}\n```", HEADINGS)
    one |= {"code": line, "language": "sh", "lead": "Mirror three hundred remotes in one go:", "document": "Tallow"}
    examples, metrics, result = run_generate(tmp_path, [long_section(), one], tokenizer_dir)
    assert metrics["dropped_over_budget"] >= 1 and "left out" in result.output
    assert not [e for e in examples if line in e["messages"][-1]["content"]]
    assert max(lengths(examples, tokenizer_dir)) <= repo_params()["model"]["max_seq_len"]


def test_a_part_cut_again_is_numbered_under_its_part_not_after_it(tokenizer_dir):
    from finetune.generation.budget import cut_block

    part = block(f"{DOC}#h=Mirroring#part=2", "section", "Mirroring", "\n\n".join(PROSE), HEADINGS, part="Remotes")
    pieces = cut_block(part, 120, set())
    assert [p["source"] for p in pieces] == [f"{DOC}#h=Mirroring#part=2.{n}" for n in range(1, len(pieces) + 1)]
    assert pieces[0]["part"] == "Remotes" and len({p["part"] for p in pieces}) == len(pieces)


def test_a_part_opening_on_a_code_span_is_named_by_that_term_not_by_its_sentence():
    # An option or property list cut into parts: each part is about the option it opens on (#19, the quality3 read:
    # 'http2session.state ("remoteWindowSize <number> The number of bytes…")').
    item = "- `remoteWindowSize` <number> The number of bytes this session may send without an update."
    assert part_label(item) == "remoteWindowSize"
    assert part_label("`OPT_STRICT_INTEGER`: enforce a 53-bit limit on integers.") == "OPT_STRICT_INTEGER"
    # A code span inside the sentence names nothing more than the sentence does.
    assert part_label("Use `wcwidth` to measure a string.") == "Use wcwidth to measure a string"
    # The underscores of a name are no emphasis ("controlcodes" was asked for `control_codes`).
    said = "Use control_codes='strict' when input has sequences"
    assert part_label("Use `control_codes='strict'` when input has sequences.") == said


def test_a_piece_of_code_is_named_by_a_comment_before_any_line_of_code():
    assert part_label("```js\nconst db = open(path);\n// add them up\nconsole.log(total)\n```") == "add them up"
    assert part_label("```sh\ntallow init\n# copy one branch\ntallow mirror\n```") == "copy one branch"
    # Without a comment, its first line of two words or more.
    assert part_label("```js\n]\nconst vm = require('node:vm');\n```") == "const vm = require"


def test_a_code_block_alone_in_its_section_keeps_its_question_on_its_first_piece(tokenizer_dir):
    from finetune.generation.budget import cut_block

    pieces = cut_block(long_code(), 400, set(), first_as_block=True)
    assert len(pieces) > 2 and pieces[0]["part"] == ""  # asked as the whole example was, lead and start of the code
    later = [p["part"] for p in pieces[1:]]
    assert all(later) and len(set(later)) == len(later)
    assert not [label for label in later if re.fullmatch(r"[\d.]+", label)]  # never by its number alone


def test_a_code_block_split_from_its_section_s_others_is_asked_by_its_lead(tokenizer_dir):
    from finetune.generation.budget import recut

    short = block(f"{DOC}#h=Mirroring", "code", " / ".join(HEADINGS), "```sh\ntallow open r1\n```", HEADINGS)
    short |= {"code": "tallow open r1", "language": "sh", "lead": "Open the remote before mirroring it:"}
    long = long_code()
    out, cut = recut([short, long], {short["id"]: 40}, load_tokenizer(tokenizer_dir))
    assert cut >= 1
    alone = [b for b in out if b["code"] == "tallow open r1"]
    assert len(alone) == 1 and alone[0]["part"] == "Open the remote before mirroring it"


def test_a_numbered_label_is_never_one_an_earlier_cut_gave():
    from finetune.generation.budget import _unique

    taken = {"2"}  # part 2 of a code block, and now part 1 is cut again and its second piece has no comment either
    assert _unique("", taken, 2) not in {"2", ""} and len(taken) == 2
    assert _unique("Proxies", taken, 3) == "Proxies" and _unique("Proxies", taken, 4) == "Proxies 4"


def test_a_comment_on_a_piece_s_last_line_names_the_next_piece_not_this_one():
    label = part_label("```sh\n$ sacrebleu ref.txt -i out.txt\n# Option 2: pipe the output in\n```")
    assert label == "$ sacrebleu ref.txt -i out.txt"
    # A piece that is one comment line is named by it, not by a number.
    assert (
        part_label("```bash\n# See ctypesgen --help for further options.\n```")
        == "See ctypesgen --help for further options"
    )


def test_a_part_never_ends_on_a_sentence_cut_at_its_comma_before_its_code():
    # "… by prefixing .with_raw_response. to any call, e.g.," then the code: the answer stopped on "e.g.,".
    lead = "The raw response is read by prefixing a method call with a marker, e.g.,"
    text = "\n\n".join([*PROSE, lead, f"```sh\n{CODE[:200]}\n```", *PROSE])
    parts = cut_text(text, 300)
    assert not [p for p in parts if p.rstrip().endswith(",")]
    assert any(p.startswith(lead) or f"\n{lead}" in p for p in parts)


def test_a_cut_section_gives_each_bullet_item_to_the_one_part_that_lists_it():
    from finetune.generation.budget import share_items

    pieces = [
        "Fill the tank before you start. Check the filter too.",
        "- Check the filter\n- Open the valve",
        "- Open the valve\n- Start the pump",
    ]
    items = ["Check the filter", "Open the valve", "Open the valve", "Start the pump"]
    # "Check the filter" is in the first piece's prose, but listed in the second; a repeated item goes once to each
    # list that shows it, in order; no part lists another's steps.
    assert share_items(items, pieces) == [
        [],
        ["Check the filter", "Open the valve"],
        ["Open the valve", "Start the pump"],
    ]


def test_a_program_is_cut_only_where_a_statement_starts_with_its_comment():
    program = "import os\n\n\ndef walk(path):\n    for f in os.listdir(path):\n        print(f)\n\n\n"
    program += "# Walk the current folder.\nwalk('.')\nif True:\n    pass\nelse:\n    walk('/')\n"
    pieces = cut_lines(program, 40)
    assert pieces[0] == "import os"
    assert pieces[1].startswith("def walk(path):") and pieces[1].endswith("print(f)")  # never inside a function
    assert pieces[2] == "# Walk the current folder.\nwalk('.')"  # a comment goes with the code after it
    assert pieces[3].startswith("if True:") and pieces[3].endswith("walk('/')")  # else continues its if


def test_a_session_is_cut_at_its_prompts_and_an_object_not_at_all():
    session = ">>> x = f(\n...     1)\n>>> x\n2\n>>> y = 3\n"
    assert cut_lines(session, 12) == [">>> x = f(\n...     1)", ">>> x\n2", ">>> y = 3"]
    shell = "$ quarry add a.txt\nstaged a.txt\n$ quarry push\nsent 1 file\n"
    assert cut_lines(shell, 30) == ["$ quarry add a.txt\nstaged a.txt", "$ quarry push\nsent 1 file"]
    # Only its outer braces are at the margin: cut anywhere else it would be no JSON; over budget, it is left out.
    obj = '{\n  "a": 1,\n  "b": [\n    2\n  ]\n}'
    assert cut_lines(obj, 10) == [obj]
