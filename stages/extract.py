"""`finetune extract`: every document of a domain's raw/ folder -> blocks, one JSON record each.

    finetune extract --input domains/heating/raw --output data/interim/heating/blocks.jsonl \
        --metrics metrics/extract/heating.json --rejects metrics/rejects/heating.json --params params.yaml \
        --params domains/heating/params.yaml

The readers are in finetune.documents. With `extract.on_error: fail` the first bad file or record stops the stage;
with `skip` it is left out and listed in --rejects. Nothing is written before every file has been read, so a failed
run leaves the previous blocks and metrics as they were; the rejects file is written however the run ends (with fail,
it names what stopped it).

Files are read extract.workers at a time (auto: one per core), and each file's result is kept in extract.cache
(data/interim/extract_cache) under a key of its bytes, the params that shape it and its reader's code: when one
scanned page of a thousand changes, DVC reruns the stage and it reads that page only, with the same output.
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.documents.corpus import reject_entry, run
from finetune.documents.ocr import OcrSettings
from finetune.documents.pages import RowLabels
from finetune.io import InputError, log, write_json, write_jsonl
from finetune.params import Extract, load_params, params_option


@click.command(name="extract")
@click.option("--input", "input_dir", required=True, type=click.Path(path_type=Path), help="e.g. domains/heating/raw")
@click.option("--output", required=True, type=click.Path(path_type=Path))
@click.option("--metrics", required=True, type=click.Path(path_type=Path))
@click.option("--rejects", required=True, type=click.Path(path_type=Path),
              help="Where extract.on_error: skip lists what it left out (an empty list otherwise).")  # fmt: skip
@params_option
@click.pass_context
def cli(ctx, input_dir, output, metrics, rejects, params_path):
    """Cut raw documents into blocks: sections, lists, tables, definitions, code, CSV rows, conversations."""
    # Extract alone also runs on a folder with no params.yaml (the defaults); a params file that is there, or one
    # named with --params, is validated whole like every command's.
    named = ctx.get_parameter_source("params_path") != click.core.ParameterSource.DEFAULT
    params = load_params(params_path).extract if named or Path(params_path[0]).exists() else Extract()
    rejected: list[dict] = []
    rows = RowLabels.from_lists(params.labelled_rows, params.key_value_columns, params.key_value_headings)
    try:
        ocr = OcrSettings(tuple(params.ocr.languages), params.ocr.dpi, params.ocr.psm, params.min_ocr_confidence)
        blocks, counts = run(input_dir, params.min_chars, True, params.on_error, rejected, params.max_chars, rows,
                             params.not_titles, ocr, params.workers, params.cache or None)  # fmt: skip
    except InputError as e:
        # The rejects are written however extract ends: on_error: skip may end with no blocks at all, and then the
        # list says why; with fail it holds the file or record that stopped the run. Blocks and metrics stay as
        # they were.
        if params.on_error == "fail" and e.path != str(input_dir):
            rejected.append(reject_entry(e, "none: it stopped the run (extract.on_error: fail)"))
        write_json(rejects, rejected)
        raise
    write_jsonl(output, blocks)
    write_json(metrics, counts)
    write_json(rejects, rejected)
    kinds = ", ".join(f"{k} {n}" for k, n in counts["blocks"].items() if n)
    log("extract", f"{len(blocks)} blocks from {sum(counts['files'].values())} files ({kinds}) -> {output}")
    if counts["split"]["sections"]:
        split = counts["split"]
        n, parts = split["sections"], split["parts"]
        log("extract", f"cut {n} section{'s' * (n != 1)} over extract.max_chars into {parts} parts")
    if rejected:
        log("extract", f"left out {len(rejected)} bad files or records (extract.on_error: skip), listed in {rejects}")
