"""Reading documents: every supported file format cut into blocks (finetune.schema describes a block)."""
