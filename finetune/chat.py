"""Chat conventions shared by the base model, training and evaluation.

Training uses TRL's conversational prompt/completion records: the prompt is every message before the last, the
completion is the last (assistant) message. TRL then computes the loss on the completion only, with any chat
template, which is why no `{% generation %}` markers are needed in the template (see TRL's assistant_only_loss).
"""

from __future__ import annotations

# ChatML, as used by Qwen and many others. The tiny default model is trained with it; a real base model keeps its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|pad|>", "<|im_start|>", "<|im_end|>")


def prompt_messages(example: dict) -> list[dict]:
    """The conversation up to the answer the model must give."""
    return example["messages"][:-1]


def reference_answer(example: dict) -> str:
    return example["messages"][-1]["content"]


def user_prompt(example: dict) -> str:
    """The last user turn, as shown in reports."""
    return next(m["content"] for m in reversed(example["messages"]) if m["role"] == "user")


def to_prompt_completion(example: dict) -> dict:
    return {"prompt": prompt_messages(example), "completion": [example["messages"][-1]]}
