"""finetune: a DVC pipeline from raw documents to a QLoRA adapter. See dvc.yaml for the stages."""
