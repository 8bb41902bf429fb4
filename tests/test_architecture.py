"""The house: every module of hba_lib belongs to one layer (``hba_lib.LAYERS``), imports only
from its own layer or the ones before it, and no two modules import each other in a circle.

Imports are read from the source (``ast``), function-level ones included, so a lazy import
cannot hide an upward dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hba_lib

PACKAGE = Path(hba_lib.__file__).resolve().parent


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index of the layer holding ``module`` (the longest matching prefix wins)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(hba_lib.LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer of hba_lib.LAYERS: add it there")
    return best


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The hba_lib modules that ``module`` imports (a name imported from a package is the
    submodule when one exists, else the package)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            src = _resolve(node, module, path.name == "__init__.py")
            names = [f"{src}.{a.name}" if f"{src}.{a.name}" in MODULES else src for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # hba_lib.x.Y -> hba_lib.x
                name = name.rpartition(".")[0]
            if name.startswith("hba_lib") and name != module:
                found.add(name)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_module_imports_from_a_higher_layer():
    names = [name for name, _ in hba_lib.LAYERS]
    upward = [
        f"{m} ({names[layer_of(m)]}) imports {dep} ({names[layer_of(dep)]})"
        for m, deps in GRAPH.items()
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(m)
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checks_catch_what_they_look_for():
    """The walkers are not vacuous: a made-up circle and a made-up upward import are found."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("hba_lib.data.video") < layer_of("hba_lib.attacks.base")
    assert "hba_lib.data.video" in GRAPH["hba_lib.viz"]  # a module-level import is seen
    assert "hba_lib.metrics" in GRAPH["hba_lib.experiments.paper_tables"]  # a lazy one too
    with pytest.raises(AssertionError, match="no layer"):
        layer_of("somewhere_else.module")


@pytest.mark.parametrize(
    "old",
    ["datasets", "synthetic", "video", "video_io", "splits", "download", "archives",
     "snippet_cache", "real_datasets", "goals", "queries", "train", "paper_tables"],
)  # fmt: skip
def test_nothing_left_at_the_old_paths(old):
    assert not (PACKAGE / f"{old}.py").exists(), f"hba_lib/{old}.py moved; remove the old file"


def test_opt_attack_holds_opt_attack_only():
    src = (PACKAGE / "attacks" / "opt_attack.py").read_text()
    assert len(src.splitlines()) < 400
    tree = ast.parse(src)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["OptAttackConfig", "OptAttack"], classes
