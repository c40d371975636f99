"""A domain whose documents are all scans goes through the whole default pipeline: scanned page images and an
image-only PDF, read by OCR (real Tesseract, real `dvc repro` in a fresh copy of the repository).

Six pages (four PNG, a PDF of two): enough for every stage to have examples, few enough for CI's 15 minutes at
~1-2 s of OCR a page. tests/benchmarks/bench_pages.py runs 300 pages through extract for the speed figures."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.benchmarks.bench_pages import EXTRACT, manual_page, render
from tests.dvcrepo import FAST, PER_DOMAIN, at, copy_repo, ran_stages, sh

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def scanned_domain(folder, pages: int = 6) -> None:
    """domains/<name>: `pages` pages of our manual scanned at 200 dpi, the last two as one image-only PDF, with
    cli_tool's task file and params naming the manual's row conventions and the generic tasks it feeds."""
    (folder / "raw").mkdir(parents=True)
    images = [render(manual_page(n), 200) for n in range(pages)]
    for n, img in enumerate(images[:-2]):
        img.save(folder / "raw" / f"page_{n:02d}.png", dpi=(200, 200))
    images[-2].save(folder / "raw" / "scans.pdf", save_all=True, append_images=images[-1:], resolution=200)
    shutil.copy(folder.parents[1] / "domains/cli_tool/tasks.yaml", folder / "tasks.yaml")
    params = yaml.safe_load((folder.parents[1] / "domains/cli_tool/params.yaml").read_text())
    params["extract"] = EXTRACT
    params["generate"]["tasks"] = ["SECTION", "STEPS", "TABLE", "REFUSAL"]
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / "questions.yaml").write_text("questions: []\n")


@pytest.mark.slow  # the real dvc and Tesseract, in a fresh copy
@needs_tesseract
def test_a_domain_of_scanned_pages_runs_the_whole_default_pipeline(tmp_path):
    repo = copy_repo(tmp_path / "repo", FAST, domains={"manuals": {"init_from": "base"}})
    scanned_domain(repo / "domains/manuals")
    out = sh(["dvc", "repro"], repo).stdout
    assert at("manuals", *PER_DOMAIN) <= ran_stages(out), out
    metrics = json.loads((repo / "metrics/extract/manuals.json").read_text())
    assert metrics["files"] == metrics["files"] | {"image": 4, "pdf": 1}
    blocks = [json.loads(line) for line in (repo / "data/interim/manuals/blocks.jsonl").open()]
    assert {b["source"].split("#")[0] for b in blocks} == {
        *(f"domains/manuals/raw/page_{n:02d}.png" for n in range(4)),
        "domains/manuals/raw/scans.pdf",
    }
    assert {b["kind"] for b in blocks} >= {"table", "list"}
    assert json.loads((repo / "metrics/rejects/manuals.json").read_text()) == []
    assert (repo / "reports/manuals/index.html").is_file()
    # The cache holds every file: an edit to one page reads that page only, and the blocks are as before
    before = (repo / "data/interim/manuals/blocks.jsonl").read_bytes()
    assert len(list((repo / "data/interim/extract_cache").rglob("*.json"))) == 5
    sh(["dvc", "repro", "-s", "extract@manuals", "--force"], repo)
    assert (repo / "data/interim/manuals/blocks.jsonl").read_bytes() == before
