"""Packaging: pyproject declares what predvis imports and nothing else; the device spelling; env.json's version."""
import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import predvis
from predvis.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda spec: _normal(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0])  # noqa: E731
    required = {name(s) for s in project["dependencies"]}
    optional = {name(s) for specs in project.get("optional-dependencies", {}).values() for s in specs}
    return required, optional


def _imported_top_levels() -> set[str]:
    names = set()
    for path in (ROOT / "predvis").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("predvis", "__future__")}


def test_every_imported_package_is_declared_and_every_declared_one_imported():
    required, optional = _declared()
    dists = importlib.metadata.packages_distributions()
    imported = set()
    for module in _imported_top_levels():
        if module not in dists:  # an optional import of a package not installed here (e.g. av)
            continue
        imported.update(_normal(d) for d in dists[module])
    missing = imported - required - optional
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
    unused = required - imported
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"


def test_torch_range_admits_current_releases():
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(s for s in required if _normal(s).startswith("torch"))
    assert "<=" not in spec and "<3" in spec.replace(" ", ""), spec


def test_env_json_records_predvis_version():
    from predvis.run import environment

    env = environment(torch.device("cpu"), seed=0)
    assert env["predvis"] == predvis.__version__


def test_version_is_single_sourced():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "predvis.__version__"' in text


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU")
def test_mps_without_an_apple_gpu_is_one_line(tmp_path, capsys):
    code = main(["train", "gopc1", "--profile", "smoke", "device=mps", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: device: 'mps' asked for, but this machine has no Apple GPU"), err
    assert not any(tmp_path.iterdir())


def test_device_spelling_lists_mps(tmp_path, capsys):
    code = main(["train", "gopc1", "--profile", "smoke", "device=mpx", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cuda:N or mps, got 'mpx'" in err[0], err
    assert not any(tmp_path.iterdir())


def test_citation_cff_names_the_implemented_papers():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["version"] == predvis.__version__
    titles = " | ".join(r["title"] for r in cff["references"])
    for words in ("continuous video in a scalable predictive recurrent network", "Gradient Origin Networks",
                  "Gradient Origin Predictive Coding", "Inceptionism", "Depth-inverting autoencoders",
                  "Deep Predictive Coding Networks for Video Prediction"):
        assert words in titles, words
