"""Extract and generate on documents nobody here wrote, read from this machine at run time, and count what is wrong
with the examples (finetune/generation/quality.py). Nothing of theirs is copied into the repository: each corpus is
copied into a temporary domain's raw/ (files, not links: the readers refuse links) and deleted afterwards.

    python tests/benchmarks/real_docs.py                          # every corpus, ~2 min on 2 cores
    python tests/benchmarks/real_docs.py --corpus man --limit 5   # one corpus, its first 5 documents
    python tests/benchmarks/real_docs.py --sample 25 --json out.json --keep /tmp/real_docs

Corpora, each in a fixed order so two runs on one machine read the same documents:
    readmes  the long descriptions (README) of installed Python packages (importlib.metadata): Markdown as .md, the
             rest (reStructuredText, plain) as .txt, the longest ones first (at least 2,000 characters)
    man      English man pages of section 1 rendered to text (`MANWIDTH=80 man -P cat`), one per k-th command family
    man_de   German man pages (/usr/share/man/de/man1) rendered the same way: English templates over German text
    html     HTML manuals under /usr/share/doc, taken in turn from each package so no one manual fills the corpus
    pdf      PDFs under /usr/share/doc (gzipped ones unpacked)

The domain is set up as the README's "add a domain" says: domains/cli_tool's task file (the generic tasks) and
params, with extract.on_error: skip (a file a reader refuses is counted, not fatal). Rules for the checks (function
words, instruction words) come from --rules, by default tests/benchmarks/quality_rules.yaml; the token budget is
model.max_seq_len of params.yaml. Output: one table on stdout, a row per measure and a column per corpus; with
--sample N, N random examples per corpus (seeded) to judge by eye; with --json, everything, the worst examples too.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from finetune.generation.quality import PROBLEMS, Rules, measure
from finetune.params import load_params

ROOT = Path(__file__).resolve().parents[2]
DOC = Path("/usr/share/doc")
MIN_README_CHARS = 2000  # a shorter long description is a line or two and a link: little for extract to read
LIMITS = {"readmes": 30, "man": 20, "man_de": 20, "html": 30, "pdf": 10}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def readmes(raw: Path, limit: int) -> None:
    found = {}
    for dist in importlib.metadata.distributions():
        meta = dist.metadata
        text = meta.get_payload() or meta.get("Description") or ""
        name = meta.get("Name") or ""
        if name and len(text) >= MIN_README_CHARS and name.casefold() not in found:
            markdown = (meta.get("Description-Content-Type") or "").startswith("text/markdown")
            found[name.casefold()] = (len(text), name, text, ".md" if markdown else ".txt")
    for _, name, text, suffix in sorted(found.values(), key=lambda f: (-f[0], f[1]))[:limit]:
        (raw / f"{_safe(name)}{suffix}").write_text(text, encoding="utf-8")


def _render_man(page: Path) -> str:
    env = os.environ | {"MANWIDTH": "80", "MAN_KEEP_FORMATTING": "", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(
        ["man", "-P", "cat", str(page)], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    return done.stdout if done.returncode == 0 else ""


def _man(raw: Path, limit: int, folder: Path) -> None:
    """The first page of every k-th command family (the name up to its first "_", "-" or "."): one gcloud page, not
    hundreds."""
    families: dict[str, Path] = {}
    for page in sorted(p for p in folder.glob("*.1*") if p.is_file() and not p.is_symlink()):
        families.setdefault(re.split(r"[_\-.]", page.name, maxsplit=1)[0], page)
    pages = list(families.values())
    step = max(1, len(pages) // limit)
    written = 0
    for page in pages[::step]:
        if written == limit:
            break
        if (text := _render_man(page)).strip():
            (raw / f"{_safe(page.name.split('.')[0])}.txt").write_text(text, encoding="utf-8")
            written += 1


def man(raw: Path, limit: int) -> None:
    _man(raw, limit, Path("/usr/share/man/man1"))


def man_de(raw: Path, limit: int) -> None:
    _man(raw, limit, Path("/usr/share/man/de/man1"))


def html(raw: Path, limit: int) -> None:
    by_package: dict[str, list[Path]] = {}
    for path in sorted(DOC.rglob("*.htm*")):
        if path.is_file() and not path.is_symlink():
            by_package.setdefault(path.relative_to(DOC).parts[0], []).append(path)
    taken = 0
    for round_ in range(max((len(v) for v in by_package.values()), default=0)):
        for package, paths in by_package.items():
            if taken < limit and round_ < len(paths):
                shutil.copyfile(paths[round_], raw / _safe(f"{package}__{paths[round_].name}"))
                taken += 1


def pdf(raw: Path, limit: int) -> None:
    paths = sorted(p for p in DOC.rglob("*.pdf*") if p.name.endswith((".pdf", ".pdf.gz")) and not p.is_symlink())
    for path in paths[:limit]:
        target = raw / _safe(path.name.removesuffix(".gz"))
        if path.name.endswith(".gz"):
            with gzip.open(path) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(path, target)


CORPORA = {"readmes": readmes, "man": man, "man_de": man_de, "html": html, "pdf": pdf}


def _finetune(work: Path, *args: str) -> tuple[bool, str, float]:
    """Run one `finetune` stage in `work`; (passed, its last log line, seconds). Sources are then `readmes/raw/…`
    wherever the work folder is, and a block's id (a hash of its source) and the phrasing it draws with it too."""
    exe = Path(sys.executable).with_name("finetune")
    start = time.perf_counter()
    done = subprocess.run([str(exe), *args], check=False, capture_output=True, text=True, cwd=work)
    lines = [ln for ln in (done.stderr or "").replace("\r", "\n").splitlines() if ln.strip()]
    return done.returncode == 0, (lines[-1] if lines else ""), time.perf_counter() - start


def overlong(examples: list[dict], model: Path, max_seq_len: int) -> int:
    """How many examples validate would call overlong: over max_seq_len tokens under the base model's template."""
    from finetune.training.models import load_tokenizer
    from finetune.validation.frames import count_tokens

    lengths, _ = count_tokens(load_tokenizer(model), [e["messages"] for e in examples])
    return sum(n is not None and n > max_seq_len for n in lengths)


def run_corpus(
    name: str, limit: int, work: Path, rules: Rules, languages: dict | None = None, model: Path | None = None
) -> dict:
    domain = work / name
    raw = domain / "raw"
    raw.mkdir(parents=True)
    CORPORA[name](raw, limit)
    params = yaml.safe_load((ROOT / "domains/cli_tool/params.yaml").read_text())
    params["extract"] = {"on_error": "skip"}
    params["generate"] = {
        "system_prompt": f"You are a documentation assistant for the {name} documents. Answer from them only.",
        "refusal": f"I can only help with questions about the {name} documents.",
    }
    (domain / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    tasks = yaml.safe_load((ROOT / "domains/cli_tool/tasks.yaml").read_text(encoding="utf-8"))
    if languages:  # --languages: the task file's languages declared, phrasings in them added to its tasks
        tasks |= {"language": languages["language"], "languages": languages["words"]}
        for task, phrasings in languages.get("phrasings", {}).items():
            if task in tasks["tasks"]:
                tasks["tasks"][task]["phrasings"] = phrasings
    (domain / "tasks.yaml").write_text(yaml.safe_dump(tasks, allow_unicode=True, sort_keys=False), encoding="utf-8")
    p = ["--params", str(ROOT / "params.yaml"), "--params", str(domain / "params.yaml")]
    blocks_path, examples_path = domain / "blocks.jsonl", domain / "examples.jsonl"
    result = {"corpus": name, "files": sum(1 for _ in raw.iterdir())}
    ok, line, secs = _finetune(
        work, "extract", "--input", str(raw.relative_to(work)), "--output", str(blocks_path),
        "--metrics", str(domain / "extract.json"), "--rejects", str(domain / "rejects.json"), *p,
    )  # fmt: skip
    result |= {"extract": "passed" if ok else f"FAILED: {line}", "extract_s": round(secs, 1)}
    if not ok:
        return result
    blocks = [json.loads(ln) for ln in blocks_path.open(encoding="utf-8")]
    result["rejects"] = len(json.loads((domain / "rejects.json").read_text()))
    result["blocks"] = len(blocks)
    ok, line, secs = _finetune(
        work, "generate", "--input", str(blocks_path), "--output", str(examples_path),
        "--metrics", str(domain / "generate.json"), "--tasks", str(domain / "tasks.yaml"), *p,
        *(["--model", str(model)] if model else []),
    )  # fmt: skip
    result |= {"generate": "passed" if ok else f"FAILED: {line}", "generate_s": round(secs, 1)}
    if not ok:
        return result
    examples = [json.loads(ln) for ln in examples_path.open(encoding="utf-8")]
    generated = json.loads((domain / "generate.json").read_text())
    result["left_out_language"] = generated.get("left_out_language", "-")
    result["cut_to_fit"] = generated.get("cut_to_fit", "-")
    result["dropped_over_budget"] = generated.get("dropped_over_budget", "-")
    result["asked_in_turn"] = generated.get("asked_in_turn", "-")
    result["skipped_sections"] = generated.get("skipped_sections", "-")  # generate.skip_sections: changelogs …
    result["per_task"] = dict(sorted(Counter(e["task"] for e in examples).items()))
    start = time.perf_counter()
    result["quality"] = measure(examples, blocks, rules)
    result["measure_s"] = round(time.perf_counter() - start, 2)
    result["examples"] = examples
    tokenizer_at = model or ROOT / "models/base"  # counted with the base model's tokenizer whether or not it cut
    if tokenizer_at.is_dir():
        result["overlong"] = overlong(examples, tokenizer_at, rules.max_tokens)
    return result


def table(results: list[dict]) -> str:
    tasks = sorted({t for r in results for t in r.get("per_task", {})})
    rows: list[tuple[str, list[str]]] = []
    rows.append(("files", [str(r["files"]) for r in results]))
    rows.append(("extract", [r["extract"][:30] for r in results]))
    rows.append(("rejects", [str(r.get("rejects", "-")) for r in results]))
    rows.append(("blocks", [str(r.get("blocks", "-")) for r in results]))
    rows.append(("generate", [r.get("generate", "-")[:30] for r in results]))
    rows.append(("examples", [str(r["quality"]["examples"]) if "quality" in r else "-" for r in results]))
    rows += [(f"  {t}", [str(r.get("per_task", {}).get(t, "-")) for r in results]) for t in tasks]
    rows.append(("left_out_language", [str(r.get("left_out_language", "-")) for r in results]))
    rows.append(("blocks cut to fit (generate --model)", [str(r.get("cut_to_fit", "-")) for r in results]))
    rows.append(("later parts asked in turn", [str(r.get("asked_in_turn", "-")) for r in results]))
    rows.append(("left out, no cut fits (generate)", [str(r.get("dropped_over_budget", "-")) for r in results]))
    rows.append(("over model.max_seq_len (validate)", [str(r.get("overlong", "-")) for r in results]))
    rows.append(("skipped_sections (blocks)", [str(r.get("skipped_sections", "-")) for r in results]))
    for problem in (*PROBLEMS, "flagged"):
        cells = []
        for r in results:
            q = r.get("quality")
            of = q.get(f"{problem}_of", q["examples"]) if q else None
            cells.append(f"{q[problem]} / {of}" if q else "-")
        rows.append((problem, cells))
    rows.append(("seconds (extract+generate)", [f"{r['extract_s'] + r.get('generate_s', 0):.1f}" for r in results]))
    width = max(len(label) for label, _ in rows)
    cols = [max(len(r["corpus"]), *(len(cells[i]) for _, cells in rows)) for i, r in enumerate(results)]
    lines = [f"{'':{width}}  " + "  ".join(f"{r['corpus']:>{c}}" for r, c in zip(results, cols, strict=True))]
    lines += [
        f"{label:{width}}  " + "  ".join(f"{v:>{c}}" for v, c in zip(cells, cols, strict=True))
        for label, cells in rows
    ]
    return "\n".join(lines)


def sample(result: dict, n: int, seed: int) -> str:
    pool = [e for e in result.get("examples", []) if e["task"] != "REFUSAL"]  # refusals are params, not documents
    picked = random.Random(f"{seed}|{result['corpus']}").sample(pool, min(n, len(pool)))
    out = [f"--- {result['corpus']}: {len(picked)} random examples of {len(pool)} (refusals left out)"]
    for i, e in enumerate(picked, start=1):
        q, a = e["messages"][-2]["content"], e["messages"][-1]["content"]
        out.append(f"[{i}] {e['task']} {e['source']}")
        for m in e["messages"][1:-2]:  # the conversation so far: a later part asked in turn, an imported chat
            said = " ".join(m["content"].split())
            out.append(f"  ({m['role']}: {said[:160]}{'…' if len(said) > 160 else ''})")
        out.append(f"  Q: {q}\n  A: {a[:600]}{'…' if len(a) > 600 else ''}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", choices=sorted(CORPORA), help="one corpus (repeatable); default all")
    ap.add_argument("--limit", type=int, help="documents per corpus (default: " + str(LIMITS) + ")")
    ap.add_argument("--rules", type=Path, default=Path(__file__).with_name("quality_rules.yaml"))
    ap.add_argument(
        "--languages",
        type=Path,
        default=Path(__file__).with_name("languages.yaml"),
        help="declare the task file's languages (words from --rules) and add these phrasings; '' for none",
    )
    ap.add_argument(
        "--model",
        type=Path,
        default=ROOT / "models/base",
        help="generate --model: cut to this model's token budget, as the pipeline does; '' for the character guess",
    )
    ap.add_argument("--sample", type=int, default=0, help="print this many random examples per corpus")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--json", type=Path, help="write every result here, the worst examples too")
    ap.add_argument("--keep", type=Path, help="work here and keep the domains (default: a temporary folder)")
    args = ap.parse_args(argv)
    rules_data = yaml.safe_load(args.rules.read_text()) if args.rules else {}
    rules = Rules.from_mapping(rules_data | {"max_tokens": load_params(ROOT / "params.yaml").model.max_seq_len})
    languages = None
    if args.languages and str(args.languages) not in ("", "."):
        languages = yaml.safe_load(args.languages.read_text(encoding="utf-8")) | {"words": rules_data["stopwords"]}
    names = args.corpus or list(CORPORA)
    with tempfile.TemporaryDirectory(prefix="real_docs_") as tmp:
        work = (args.keep or Path(tmp)).resolve()
        if args.keep:
            shutil.rmtree(work, ignore_errors=True)
        results = []
        for name in names:
            print(f"[real_docs] {name} …", file=sys.stderr, flush=True)
            model = args.model.resolve() if str(args.model) not in ("", ".") else None
            results.append(run_corpus(name, args.limit or LIMITS[name], work, rules, languages, model))
        print(table(results))
        for r in results:
            if args.sample:
                print("\n" + sample(r, args.sample, args.seed))
        if args.json:
            slim = [{k: v for k, v in r.items() if k != "examples"} for r in results]
            args.json.write_text(json.dumps(slim, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
