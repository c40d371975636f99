"""Helper commands that are not DVC stages: `finetune export`, `finetune verify`."""
