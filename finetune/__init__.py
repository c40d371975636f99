"""The library behind the `finetune` stages, grouped by concern.

documents/   raw files -> blocks (Markdown, HTML, PDF, scanned pages, CSV, JSONL, text)
generation/  blocks -> chat examples (the task registry, an optional teacher LLM), the train/val split, balancing
validation/  the Great Expectations gate and the per-example checks of `finetune verify data`
training/    the base model, the QLoRA recipe, resumable checkpoints, multi-process launch, the model card
evaluation/  generation on val, scores, the report
serving/     the OpenAI-compatible endpoint client, merging the adapter for serving
commands/    the helper commands that are not DVC stages (`finetune export`, `finetune verify`)
params.py    params.yaml as typed, validated objects
io.py, schema.py, chat.py   files and atomic writes, record shapes, chat conventions
"""
