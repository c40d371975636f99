"""Tasks and generation: the task registry, blocks -> chat examples, the optional teacher LLM, split and balance."""
