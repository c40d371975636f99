"""Serving: the OpenAI-compatible endpoint client (evaluate --endpoint, the teacher) and the merged export."""
