"""The `finetune` console script: one subcommand per pipeline stage (stages/) and per helper (finetune/commands/).

Stage modules import torch, transformers or great_expectations inside their functions, and this group imports a
command's module only when it is called, so `finetune --help` and `finetune <stage> --help` stay instant.
"""

from __future__ import annotations

import importlib
import sys

import click

from finetune.io import InputError, printable
from finetune.serving.endpoint import EndpointError  # light: openai is imported on the first request

# command name -> "module:attribute"; order is the pipeline's order, as shown by --help.
COMMANDS = {
    "extract": "stages.extract:cli",
    "base": "stages.base:cli",
    "generate": "stages.generate:cli",
    "balance": "stages.balance:cli",
    "validate": "stages.validate:cli",
    "train": "stages.train:cli",
    "baseline": "stages.baseline:cli",
    "evaluate": "stages.evaluate:cli",
    "report": "stages.report:cli",
    "interference": "stages.interference:cli",
    "compare": "stages.compare:cli",
    "export": "finetune.commands.export:cli",
    "verify": "finetune.commands.verify:cli",
    "show": "finetune.commands.show:cli",
    "chat": "finetune.commands.chat:cli",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def group(debug):
    """Turn raw documents into a fine-tuned LoRA adapter. Run the whole pipeline with `dvc repro`."""
    # --debug is read by main() before Click runs: it decides how errors escaping any command are shown.


def main(argv=None):
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        group.main(args=argv, prog_name="finetune", standalone_mode=False)
    except (InputError, EndpointError) as e:  # bad input, or a server that stayed down: one line, no traceback
        if debug:
            raise
        # The message names a file and quotes its content: escaped, so a crafted name stays on this one line.
        click.echo(f"error: {printable(str(e))}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.message = printable(e.message)  # it may quote an argument: a path with a newline in its name
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
