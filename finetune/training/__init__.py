"""Training: the base model, loading it (4-bit), the QLoRA recipe, checkpoints, multi-process launch, model card."""
