"""Validation: the Great Expectations gate before training, and the per-example checks behind `verify data`."""
