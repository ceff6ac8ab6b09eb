"""The package's architecture, checked over its source with ``ast``.

Layers, bottom to top (docs/architecture.md): an import may point down or sideways, never up; nothing
imports ``tests``; and a backend folder is named only by itself (others reach it through the registry).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "predvis"

# top-level module or package of predvis -> its layer (higher may import lower or equal)
LAYERS: dict[str, int] = {
    "errors": 0, "progress": 0, "metrics": 0, "tables": 0,
    "config": 1, "run": 1, "allocator": 1, "checkpoint": 1, "parallel": 1, "memory": 1, "runlock": 1,
    "runtime": 2, "data": 2, "viz": 2, "figures": 2, "report": 2,
    "backends": 3,
    "experiment": 4,
    "train": 5,
    "probes": 6,
    "compare": 7, "reproduce": 7, "studies": 7, "bench": 7, "jobs": 7, "run_choice": 7,
    "cli": 8, "__main__": 8, "__init__": 0,
}


def _unit(module: str) -> str:
    """'predvis.backends.gopc.model' -> 'backends'; bench_pvm-style modules belong to 'bench'."""
    top = module.split(".")[1] if "." in module else "__init__"
    return "bench" if top.startswith("bench") else top


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    here = "predvis." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = here.split(".")[: -node.level] if not path.name == "__init__.py" else here.split(".")[: len(here.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "predvis":  # from predvis import checkpoint
                found += [(node.lineno, f"predvis.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, name))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def _module(path: Path) -> str:
    return "predvis." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def test_every_top_level_unit_has_a_layer():
    units = {_unit(_module(p)) for p in SOURCES}
    assert not units - set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    me = _unit(_module(path))
    upward = []
    for line, name in _imports(path):
        if name.split(".")[0] == "tests":
            upward.append(f"line {line}: imports {name} (the package never imports its tests)")
        if not name.startswith("predvis.") or me in ("__init__",) and _module(path) == "predvis":
            continue
        other = _unit(name)
        if other in LAYERS and LAYERS[other] > LAYERS[me]:
            upward.append(f"line {line}: {me} (layer {LAYERS[me]}) imports {name} (layer {LAYERS[other]})")
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_backend_is_named_only_by_its_own_folder(path):
    module = _module(path)
    if _unit(module) == "bench":
        pytest.skip("a benchmark of one model's step names the model it measures")
    mine = module.split(".")[2] if module.startswith("predvis.backends.") and module.count(".") >= 3 else None
    named = []
    for line, name in _imports(path):
        parts = name.split(".")
        if len(parts) >= 3 and parts[:2] == ["predvis", "backends"] and parts[2] != "registry" and parts[2] != mine:
            named.append(f"line {line}: imports {name}")
    assert not named, "\n".join(named)


def test_module_level_imports_form_no_cycle():
    """No two modules import each other at import time, directly or round a longer loop (imports inside
    functions are left out: they run after both modules exist)."""
    names = {_module(p).removesuffix(".__init__"): p for p in SOURCES}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {t for t in found if t in names and t != name}
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loop = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(loop))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_cli_loads_no_backend_until_one_is_asked_for():
    """`predvis --help` and friends stay light: importing the CLI imports the registry, not the backends."""
    import subprocess
    import sys

    code = "import sys, predvis.cli; print(sorted(m for m in sys.modules if m.startswith('predvis.backends.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['predvis.backends.registry']"


def test_the_depth_inversion_study_crosses_the_backends_own_variants():
    from predvis.backends.registry import get_method
    from predvis.studies.depth_inversion_table import VARIANTS

    assert VARIANTS == get_method("depth_inversion").VARIANTS
