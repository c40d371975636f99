"""What a stage's code really reads, derived from the source: its project imports (transitively, AST) and its
params keys (typed attribute reads). tests/test_dvc_deps.py compares both with dvc.yaml.

Params reads are found through types, the way the code is written: a name bound to `load_params(...)` is the whole
Params, a name bound to `load_params(...).section` or a parameter annotated with a section class (`gparams:
Generate`) is that section, and `x.key` on such a name is a read of `section.key`. A section passed whole to a
function is followed into that function through its annotation.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "finetune")


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name, or None for a third-party module."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def direct_imports(path: Path) -> set[Path]:
    """Project files `path` imports anywhere in it (module level or inside functions)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from finetune.generation import teacher` imports a module; `from finetune.io import log` a name.
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            f = module_file(name)
            if f is not None:
                found.add(f)
    return found


def closure(path: Path) -> set[Path]:
    """`path` and every project file it imports, directly or not. Package __init__ files are left out: the test
    checks they hold nothing but a docstring, so editing one changes nothing a stage does."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo += direct_imports(f)
    return {f for f in seen if f.name != "__init__.py"}


def rel(paths: set[Path]) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in paths}


# --- params reads -----------------------------------------------------------------------------------------------


def section_classes() -> dict[str, str]:
    """Section model class name -> its dotted key in params.yaml (Generate -> generate, Tiny -> model.tiny)."""
    from finetune.params import Params, Section

    out = {"Params": ""}

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, Section):
                key = f"{prefix}{field.alias or name}"
                out[ann.__name__] = key
                walk(ann, key + ".")

    walk(Params, "")
    return out


def _annotation_name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split("|")[0].strip()
    if isinstance(node, ast.BinOp):  # `Quant | None`
        return _annotation_name(node.left)
    return None


def _loads_params(node) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_params"


def _chain(node) -> list[str] | None:
    """`a.b.c` -> ["a", "b", "c"]; None for anything that is not a plain attribute chain on a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    if _loads_params(node):
        return ["<params>", *reversed(parts)]
    if isinstance(node, ast.IfExp):  # `load_params(p).extract if … else Extract()`
        chain = _chain(node.body)
        return chain and [*chain, *reversed(parts)]
    return None


def _read(path: list[str], keys: dict[str, set[str]]) -> str | None:
    """The params key a dotted attribute path reads: the deepest section it names plus one key of it, or the
    section itself when it is dumped whole; None when the path is no params read."""
    section = ""
    for i, part in enumerate(path):
        if part in ("model_dump", "dump"):
            return section or None
        candidate = f"{section}.{part}" if section else part
        if candidate in keys:
            section = candidate
            continue
        if not section and part in keys[""]:  # a top-level key that is no section: `domains`
            return part
        return f"{section}.{part}" if section and part in keys[section] else None
    return None  # the section itself, passed on: what the callee reads of it is counted there


class _Module:
    """One project file: its functions (and class methods as `Class.method`) and what its names import."""

    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.defs: dict[str, ast.AST] = {}
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defs[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.defs[node.name] = node
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.defs[f"{node.name}.{item.name}"] = item
        self.imports: dict[str, tuple[Path, str | None]] = {}  # local name -> (file, name in it or None: module)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = module_file(f"{node.module}.{a.name}")
                    if sub is not None:
                        self.imports[a.asname or a.name] = (sub, None)
                    elif (f := module_file(node.module)) is not None:
                        self.imports[a.asname or a.name] = (f, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if (f := module_file(a.name)) is not None and a.asname:
                        self.imports[a.asname] = (f, None)


def reachable(path: Path, entry: str = "cli") -> list[ast.AST]:
    """The function nodes reachable from `entry` in `path` by calls or references, across project modules."""
    modules: dict[Path, _Module] = {}

    def mod(p: Path) -> _Module:
        if p not in modules:
            modules[p] = _Module(p)
        return modules[p]

    seen: set[tuple[Path, str]] = set()
    out: list[ast.AST] = []
    todo = [(path, entry)]
    while todo:
        p, name = todo.pop()
        m = mod(p)
        if (p, name) in seen or name not in m.defs:
            continue
        seen.add((p, name))
        node = m.defs[name]
        if isinstance(node, ast.ClassDef):  # constructing or naming a class: any of its methods may run
            todo += [(p, k) for k in m.defs if k.startswith(f"{name}.")]
            continue
        out.append(node)
        for ref in ast.walk(node):
            if isinstance(ref, ast.Name):
                if ref.id in m.defs:
                    todo.append((p, ref.id))
                elif ref.id in m.imports and m.imports[ref.id][1] is not None:
                    todo.append(m.imports[ref.id])
            elif isinstance(ref, ast.Attribute) and isinstance(ref.value, ast.Name):
                owner = ref.value.id
                if owner in m.imports and m.imports[owner][1] is None:  # module.function
                    todo.append((m.imports[owner][0], ref.attr))
                elif owner in m.imports:  # ImportedClass.method
                    todo.append((m.imports[owner][0], f"{m.imports[owner][1]}.{ref.attr}"))
                elif owner in m.defs:  # LocalClass.method
                    todo.append((p, f"{owner}.{ref.attr}"))
    return out


def params_reads(functions: list[ast.AST]) -> set[str]:
    """The params keys (`section.key`, a nested section such as `model.tiny`, or a section dumped whole) that
    `functions` (see reachable) read."""
    from finetune.params import Params

    classes = section_classes()
    keys = _keys()
    alias = {n: f.alias for n, f in Params.model_fields.items() if f.alias}  # validate_ -> validate
    reads: set[str] = set()
    for top in functions:
        for fn in [n for n in ast.walk(top) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            bound: dict[str, str] = {}  # local name -> "" (the whole Params) or a dotted section
            for arg in [*fn.args.args, *fn.args.kwonlyargs]:
                cls = _annotation_name(arg.annotation) if arg.annotation else None
                if cls in classes:
                    bound[arg.arg] = classes[cls]
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    chain = _chain(node.value)
                    if chain and (chain[0] == "<params>" or chain[0] in bound):
                        dotted = [p for p in [bound.get(chain[0], "")] if p] + [alias.get(c, c) for c in chain[1:]]
                        if ".".join(dotted) in keys or not dotted:
                            bound[node.targets[0].id] = ".".join(dotted)
            for node in ast.walk(fn):
                chain = _chain(node) if isinstance(node, ast.Attribute) else None
                if chain and (chain[0] == "<params>" or chain[0] in bound):
                    prefix = bound.get(chain[0], "")
                    dotted = (prefix.split(".") if prefix else []) + [alias.get(c, c) for c in chain[1:]]
                    if (found := _read(dotted, keys)) is not None:
                        reads.add(found)
    # A read of `model.tiny.seed` is reported as `model.tiny`; keep only the shortest of overlapping reads.
    return {r for r in reads if not any(r.startswith(o + ".") for o in reads)}


def _keys() -> dict[str, set[str]]:
    """Dotted section -> its keys, for every section and nested section of Params."""
    from finetune.params import Params, Section

    out: dict[str, set[str]] = {}

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, Section):
                key = f"{prefix}{field.alias or name}"
                out[key] = {f.alias or n for n, f in ann.model_fields.items()}
                walk(ann, key + ".")

    walk(Params, "")
    sections = set(out)
    out[""] = {f.alias or n for n, f in Params.model_fields.items()} - sections
    return out
