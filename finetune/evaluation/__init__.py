"""Evaluation: answers on val from a local or served model, the scores, and the report."""
