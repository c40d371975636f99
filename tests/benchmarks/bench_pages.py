"""Scanned-page benchmark, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_pages.py                      # quality on 8 pages a condition, speed on 300 pages
    python tests/benchmarks/bench_pages.py --pages 20 --quality-pages 4 --workdir /tmp/bench_pages

Writes a service manual of our own (a fictional "Therma" water heater range: a description, a specifications table,
numbered procedure steps and a troubleshooting table per model, one page each) and renders its pages with Pillow to
images whose text is known, then:

1. Quality, per condition (clean and degraded: rotated 1-3 degrees, blurred and speckled; 150 and 300 dpi; the clean
   300-dpi pages as an image-only PDF): the character error rate of Tesseract's text against the rendered text (the
   Levenshtein distance over the reference length, whitespace collapsed), and how many of the pages' headings,
   table rows and steps `finetune extract` gives back as blocks.
2. Speed, on --pages pages (300 dpi, clean): `finetune extract` run as DVC runs it, with extract.workers 1 and 2
   (the second one filling the cache), then again after one page changed; each time with the load average before it (the
   machine is shared), and the peak memory of extract's processes (ru_maxrss of the children).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.documents.ocr import OcrSettings, ocr_image

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # fonts-dejavu: on every Debian/Ubuntu image with X fonts
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
# The manual writes its tables as lines, as extract.key_value_columns and extract.labelled_rows name them.
EXTRACT = {
    "key_value_columns": ["Parameter", "Value", "Unit"],
    "key_value_headings": ["Specifications"],
    "labelled_rows": [["Symptom", "Cause", "Remedy"]],
}
PEAK_MIB: list[float] = []  # ru_maxrss of each extract run
KINDS = ("Description", "Specifications", "Procedure", "Troubleshooting")


def manual_page(n: int) -> list[str]:
    """Page n of the manual: its heading line, then its body lines (a model per four pages: TH-101, TH-102, ...)."""
    model, kind = f"TH-{101 + n // 4}", KINDS[n % 4]
    litres = 80 + 10 * (n // 4)
    heading = f"Therma - {kind} - {model}"
    if kind == "Description":
        body = [
            (
                f"The {model} is an unvented indirect cylinder of {litres} litres for sealed heating systems. Its coil "
                f"heats the stored water from the boiler's primary flow; an immersion heater of 3 kW serves as backup."
            ),
            (
                "Install it on a level floor that bears its full weight, with 300 mm clear above the top cover for the "
                "anode and the temperature and pressure relief valve."
            ),
        ]
        return [heading, *[ln for p in body for ln in textwrap.wrap(p, 78)]]
    if kind == "Specifications":
        rows = [("Rated volume", f"{litres}", "L"), ("Coil output", f"{18 + n // 4 % 9}", "kW"),
                ("Heat-up time", f"{25 + n // 4 % 20}", "min"), ("Maximum inlet pressure", "12", "bar"),
                ("Relief valve setting", "7", "bar"), ("Weight (empty)", f"{30 + n // 4 % 40}", "kg")]  # fmt: skip
        return [heading, *[f"{name}: {value} {unit}" for name, value, unit in rows]]
    if kind == "Procedure":
        steps = ["Switch off the boiler and the immersion heater at the isolator.",
                 "Close the cold mains inlet valve and open a hot tap to release the pressure.",
                 f"Unscrew the anode of the {model} with a 27 mm socket and inspect it.",
                 "Replace an anode worn to less than 10 mm in diameter.",
                 "Refit the anode with new PTFE tape, open the inlet valve and check for leaks."]  # fmt: skip
        return [heading, "Service the anode once a year.", *[f"{i}. {s}" for i, s in enumerate(steps, 1)]]
    faults = [("E1 sensor fault", "Sensor cable open circuit", "Reconnect or replace the sensor"),
              ("E4 overheat cut-out tripped", "Zone valve stuck open", "Free the valve, then reset the cut-out"),
              ("Water discharges at the relief valve", "Expansion vessel flat", "Recharge the vessel to 3.5 bar")]  # fmt: skip
    lines = [heading]
    for symptom, cause, remedy in faults:
        lines += [f"Symptom: {symptom} on the {model}", f"Cause: {cause}", f"Remedy: {remedy}"]
    return lines


def render(lines: list[str], dpi: int):
    """An A4 page (8.27 x 11.69 in) at `dpi`: the heading in 14 pt bold, the body in 11 pt, black on white."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (round(8.27 * dpi), round(11.69 * dpi)), 255)
    draw = ImageDraw.Draw(img)
    head, body = ImageFont.truetype(BOLD, round(14 * dpi / 72)), ImageFont.truetype(FONT, round(11 * dpi / 72))
    y = dpi  # a one-inch margin
    for i, line in enumerate(lines):
        font = head if i == 0 else body
        draw.text((dpi, y), line, font=font, fill=0)
        y += round((28 if i == 0 else 17) * dpi / 72)  # points of line spacing
    return img


def degrade(img, dpi: int, rng: random.Random):
    """A poor scan: rotated 1-3 degrees either way, blurred by ~1/300 in, speckled with 0.5% dark and light dots."""
    from PIL import ImageFilter

    img = img.rotate(rng.uniform(1, 3) * rng.choice((-1, 1)), resample=3, expand=True, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(dpi / 300))
    px = img.load()
    w, h = img.size
    for _ in range(int(w * h * 0.005)):
        px[rng.randrange(w), rng.randrange(h)] = rng.choice((0, 90, 200))
    return img


def write_condition(folder: Path, pages: list[list[str]], dpi: int, degraded: bool, pdf: bool, seed: int = 0):
    """The pages as PNG files, or as one image-only PDF (what a scanner writes: one image per page, no text layer).
    PNG files are rendered one at a time: 300 A4 pages at 300 dpi would be 2.6 GB, and every `finetune extract` this
    script starts would be forked from that (its peak memory counted with it). Pillow holds a PDF's pages at once."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    def image(lines):
        img = render(lines, dpi)
        return degrade(img, dpi, rng) if degraded else img

    if pdf:
        first, rest = image(pages[0]), (image(lines) for lines in pages[1:])
        first.save(folder / "manual.pdf", save_all=True, append_images=rest, resolution=dpi)
        return
    for n, lines in enumerate(pages):
        image(lines).save(folder / f"page_{n:04d}.png", dpi=(dpi, dpi))


def cer(reference: str, found: str) -> float:
    from rapidfuzz.distance import Levenshtein

    ref, hyp = " ".join(reference.split()), " ".join(found.split())
    return Levenshtein.distance(ref, hyp) / max(len(ref), 1)


def extract(work: Path, raw: Path, workers: int, cache: bool, out: str = "blocks") -> tuple[float, float, list]:
    """`finetune extract` on `raw` as DVC runs it; (seconds, load average before, blocks)."""
    override = {"extract": EXTRACT | {"workers": workers, "cache": "extract_cache" if cache else "",
                                      "on_error": "skip", "min_ocr_confidence": 0}}  # fmt: skip
    (work / "bench_params.yaml").write_text(json.dumps(override))
    cmd = ["finetune", "extract", "--input", str(raw), "--output", f"{out}.jsonl", "--metrics", f"{out}.json",
           "--rejects", f"{out}_rejects.json", "--params", str(REPO / "params.yaml"), "--params", "bench_params.yaml"]  # fmt: skip
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=err)
        # wait4: this run's rusage alone; ru_maxrss is the largest of extract, its workers and their Tesseracts
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"extract failed:\n{err.read().decode()[-2000:]}")
    PEAK_MIB.append(usage.ru_maxrss / 1024)
    return seconds, load, [json.loads(line) for line in (work / f"{out}.jsonl").open()]


def expected_rows(lines: list[str]) -> list[tuple[str, ...]]:
    """The table rows a page's lines hold, as extract should give them: (name, value, unit) or (symptom, cause,
    remedy)."""
    if "Specifications" in lines[0]:
        return [(name, *rest.rsplit(" ", 1)) for name, rest in (ln.split(": ", 1) for ln in lines[1:])]
    fields = [ln.split(": ", 1)[1] for ln in lines[1:] if ln.split(":")[0] in ("Symptom", "Cause", "Remedy")]
    return [tuple(fields[i : i + 3]) for i in range(0, len(fields), 3)]


def recovered(blocks: list[dict], pages: list[list[str]]) -> str:
    """How many of `pages`' headings, table rows and steps came back as blocks, each exactly."""
    titles = {b["title"] for b in blocks}
    rows = {tuple(r.values()) for b in blocks if b["kind"] == "table" for r in b["rows"]}
    steps = {item for b in blocks if b["kind"] == "list" for item in b.get("items", [])}
    heads = [lines[0].replace(" - ", " / ") for lines in pages]
    want_rows = [r for lines in pages for r in expected_rows(lines)]
    want_steps = [ln.split(". ", 1)[1] for lines in pages for ln in lines[1:] if ln[:1].isdigit()]
    return (f"headings {sum(h in titles for h in heads)}/{len(heads)}, "
            f"table rows {sum(r in rows for r in want_rows)}/{len(want_rows)}, "
            f"steps {sum(s in steps for s in want_steps)}/{len(want_steps)}")  # fmt: skip


def quality(work: Path, n_pages: int) -> None:
    pages = [manual_page(n) for n in range(n_pages)]
    print(f"\n## OCR quality, {n_pages} pages a condition (Tesseract {tesseract_version()})")
    print(f"{'condition':<22} {'CER':>7} {'worst page':>11} {'confidence':>11}  blocks recovered")
    for name, dpi, degraded, pdf in [("clean 300 dpi", 300, False, False), ("clean 150 dpi", 150, False, False),
                                     ("degraded 300 dpi", 300, True, False), ("degraded 150 dpi", 150, True, False),
                                     ("image-only PDF 300", 300, False, True)]:  # fmt: skip
        raw = work / "quality" / name.replace(" ", "_")
        write_condition(raw, pages, dpi, degraded, pdf)
        rates, confs = [], []
        if not pdf:  # the PDF's pages are the clean 300-dpi images: its CER is theirs; its blocks are its own
            for n, lines in enumerate(pages):
                page = ocr_image(str(raw / f"page_{n:04d}.png"), "bench", OcrSettings())
                rates.append(cer("\n".join(lines), "\n".join(ln.text for ln in page.lines)))
                confs.append(page.confidence)
        _, _, blocks = extract(work, raw, 2, cache=False, out=f"quality_{raw.name}")
        figures = f"{sum(rates) / len(rates):7.2%} {max(rates):11.2%} {sum(confs) / len(confs):11.1f}" if rates else (
            f"{'(as clean 300)':>31}")  # fmt: skip
        print(f"{name:<22} {figures}  {recovered(blocks, pages)}", flush=True)


def speed(work: Path, n_pages: int) -> None:
    pages = [manual_page(n) for n in range(n_pages)]
    raw = work / "speed" / "raw"
    write_condition(raw, pages, 300, False, False)
    print(f"\n## Speed, {n_pages} clean 300-dpi pages, `finetune extract` ({os.cpu_count()} cores here)")
    one, load1, _ = extract(work, raw, 1, cache=False)
    print(f"workers 1: {one:7.1f} s, {one / n_pages:.2f} s/page   (load before: {load1:.2f})", flush=True)
    shutil.rmtree(work / "extract_cache", ignore_errors=True)
    two, load2, _ = extract(work, raw, 2, cache=True)
    print(f"workers 2: {two:7.1f} s, {two / n_pages:.2f} s/page   (load before: {load2:.2f})  "
          f"speed-up {one / two:.2f}x", flush=True)  # fmt: skip
    full = two  # that run filled the cache: a full run, as the first `dvc repro` of a new corpus is
    changed = manual_page(0)
    changed[1] = changed[1].replace("unvented", "vented")
    render(changed, 300).save(raw / "page_0000.png", dpi=(300, 300))
    rerun, load4, _ = extract(work, raw, 2, cache=True)
    print(
        f"rerun after one changed page: {rerun:.1f} s = {rerun / full:.1%} of the full run   (load before: {load4:.2f})"
    )
    print(f"peak memory of one process (extract, a worker or Tesseract): {max(PEAK_MIB):.0f} MiB")


def tesseract_version() -> str:
    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False).stdout
    return out.split("\n", 1)[0].split()[-1] if out else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=300, help="pages for the speed figures (0: none)")
    ap.add_argument("--quality-pages", type=int, default=8, help="pages per quality condition (0: none)")
    ap.add_argument("--workdir", type=Path, help="kept afterwards (default: a temporary folder)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_pages_"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"work folder: {work}; uptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()}"
    )
    if args.quality_pages:
        quality(work, args.quality_pages)
    if args.pages:
        speed(work, args.pages)
    print(f"\nuptime: {subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()}")
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
