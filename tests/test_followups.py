"""A later part of a cut section is asked as the next turn after the part before it (generation/followups.py)."""

from __future__ import annotations

from finetune.documents.readers import markdown_blocks
from finetune.generation.followups import ask_in_turn, previous_parts
from finetune.generation.taskfile import load
from tests.conftest import REPO
from tests.test_document_names import generate_examples

CLI_TASKS = REPO / "domains/cli_tool/tasks.yaml"  # the generic task file: SECTION and CODE have follow_up phrasings
PARAGRAPHS = [
    "Remotes are named once and used by name everywhere after; a remote holds a URL and the key that signs pushes.",
    "The mirror walks every branch in order and copies what the remote lacks, the newest commits first of all.",
    "Retries back off twice as long each time, up to the limit that the configuration gives for that remote.",
    "Conflicts stop the mirror for that branch only; the other branches carry on and are reported at the end.",
]
GUIDE = "# Tallow guide\n\n## Mirroring\n\n" + "\n\n".join(PARAGRAPHS) + "\n"


def parts() -> list[dict]:
    """The Mirroring section cut by extract into parts of two paragraphs."""
    return markdown_blocks(GUIDE, "raw/guide.md", 0, max_chars=240)


def test_a_later_part_is_asked_after_the_part_before_it_and_answered_with_its_own_text(tmp_path):
    blocks = [b for b in parts() if b["kind"] == "section"]
    assert len(blocks) == 2 and blocks[1]["part"]  # the second part would be asked by a clause of its own
    examples, metrics = generate_examples(tmp_path, blocks)
    first, second = sorted(examples, key=lambda e: len(e["messages"]))
    assert len(first["messages"]) == 3 and len(second["messages"]) == 5
    # The conversation so far is the first part's own example: its question and its answer, word for word.
    assert second["messages"][1:3] == first["messages"][1:3]
    assert second["messages"][3]["content"] in {
        "[QA] What else should I know about Mirroring (Tallow guide)?",
        "[QA] Tell me more about Mirroring (Tallow guide).",
    }
    assert second["messages"][-1]["content"] == blocks[1]["text"]
    assert metrics["asked_in_turn"] == 1 and metrics["in_turn_over_budget"] == 0


def test_without_follow_up_phrasings_or_room_a_later_part_keeps_its_own_question(tmp_path):
    blocks = [b for b in parts() if b["kind"] == "section"]
    taskfile = load(CLI_TASKS)
    standalone = [
        {"id": f"e{i}", "task": "SECTION", "source": b["source"], "block_id": b["id"], "meta": {},
         "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": f"[QA] Q{i}?"},
                      {"role": "assistant", "content": b["text"]}]}
        for i, b in enumerate(blocks)
    ]  # fmt: skip
    kept, counts = ask_in_turn(standalone, blocks, taskfile, 0, "{question} ({document})", lambda m: False)
    assert kept == standalone and counts == {"asked_in_turn": 0, "in_turn_over_budget": 1}
    taskfile.tasks["SECTION"].follow_up.clear()
    kept, counts = ask_in_turn(standalone, blocks, taskfile, 0, "{question} ({document})", lambda m: True)
    assert kept == standalone and counts["asked_in_turn"] == 0


def test_pieces_of_one_program_go_on_from_each_other_but_two_programs_of_a_section_do_not():
    def code(part: str) -> dict:
        return {"id": part, "source": f"raw/a.md#h=X#part={part}", "kind": "code", "part": f"label {part}"}

    blocks = [code("c1.1"), code("c1.2"), code("c1.3"), code("c2")]
    assert previous_parts(blocks) == {"c1.2": "c1.1", "c1.3": "c1.2"}
