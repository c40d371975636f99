"""Where a domain's files lie, for the commands people run by hand (`finetune chat --domain`, `finetune evaluate
--domain … --endpoint`, `finetune show examples --domain`).
The stages get their paths from dvc.yaml; tests/test_layout.py checks that these agree."""

from __future__ import annotations


def domain_files(domain: str) -> dict[str, str]:
    return {
        "adapter": f"models/{domain}",
        "tasks": f"domains/{domain}/tasks.yaml",
        "params": f"domains/{domain}/params.yaml",
        "blocks": f"data/interim/{domain}/blocks.jsonl",
        "examples": f"data/interim/{domain}/examples.jsonl",
        "val": f"data/processed/{domain}/val.jsonl",
        "baseline_predictions": f"data/eval/{domain}/baseline_predictions.jsonl",
        "baseline_scores": f"data/eval/{domain}/baseline_scores.json",
        # A served model's evaluation, beside the evaluate stage's own outputs, never over them.
        "served_predictions": f"data/eval/{domain}/served_predictions.jsonl",
        "served_metrics": f"metrics/served/{domain}.json",
        "served_report": f"reports/{domain}/served.md",
        "served_plot": f"reports/{domain}/served_tasks.csv",
    }


def fill_defaults(ctx, domain: str, options: dict[str, str]) -> dict:
    """The command's option values, with each option the user left at its default (`options`: option name -> key of
    domain_files) set to the domain's file; `params_path` gains the domain's params file."""
    import click

    files = domain_files(domain)
    values = dict(ctx.params)
    for option, key in options.items():
        if ctx.get_parameter_source(option) is click.core.ParameterSource.DEFAULT:
            values[option] = files[key]
    if ctx.get_parameter_source("params_path") is click.core.ParameterSource.DEFAULT:
        values["params_path"] = (*values["params_path"], files["params"])
    return values
