"""Every registered backend and probe, tested the same way (as timm tests every registered model).

For each backend of the registry: its first experiment file (by name) trains on the smoke profile, an
interrupted run resumes to bit-identical weights, ``--dry-run`` prints its parameter counts, and every
registered probe whose ``applies_to`` accepts the trained model runs with its ``smallest`` options.
A backend or probe added to a registry is tested here without editing this file.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from predvis.backends.registry import get_method, methods
from predvis.checkpoint import load_checkpoint
from predvis.config import EXPERIMENTS_DIR, read_yaml
from predvis.errors import Interrupted
from predvis.experiment import load_experiment, load_trained
from predvis.probes.registry import probes
from predvis.train import loop

pytestmark = pytest.mark.usefixtures("one_thread")


def _experiment_of(method: str) -> str:
    """The first experiment file (by name) whose ``method:`` is ``method``."""
    for path in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        if read_yaml(path).get("method") == method:
            return path.stem
    raise AssertionError(f"no experiment file trains method '{method}': add experiments/<name>.yaml")


BACKENDS = list(methods())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """method name -> a finished 2-epoch smoke run of its first experiment (trained once per module)."""
    runs: dict[str, Path] = {}

    def get(method: str) -> Path:
        if method not in runs:
            root = tmp_path_factory.mktemp(f"straight_{method}")
            cfg = load_experiment(_experiment_of(method), "smoke", ["train.epochs=2"])
            runs[method] = loop.train(cfg, root, {})
        return runs[method]
    return get


@pytest.mark.parametrize("method", BACKENDS)
def test_every_backend_has_its_schemas_and_an_experiment(method):
    cls = get_method(method)
    for section in ("ModelConfig", "DataConfig", "TrainConfig", "EvalConfig"):
        assert isinstance(getattr(cls, section), type)
    cfg = load_experiment(_experiment_of(method), "smoke")
    assert cfg.method == method


@pytest.mark.parametrize("method", BACKENDS)
def test_every_backend_resumes_to_identical_weights(method, trained, tmp_path, monkeypatch):
    """2 epochs straight == 1 epoch, Ctrl-C at the first step of epoch 2, --resume."""
    straight = trained(method)
    cls = get_method(method)
    original_step, original_end = cls.train_step, cls.end_epoch
    ended = {"epochs": 0}

    def end_epoch(self, epoch):
        ended["epochs"] += 1
        return original_end(self, epoch)

    def train_step(self, batch):
        if ended["epochs"] == 1:
            raise KeyboardInterrupt
        return original_step(self, batch)

    monkeypatch.setattr(cls, "end_epoch", end_epoch)
    monkeypatch.setattr(cls, "train_step", train_step)
    cfg = load_experiment(_experiment_of(method), "smoke", ["train.epochs=2"])
    with pytest.raises(Interrupted, match="can be resumed"):
        loop.train(cfg, tmp_path, {})
    monkeypatch.setattr(cls, "end_epoch", original_end)
    monkeypatch.setattr(cls, "train_step", original_step)
    half = next((tmp_path / cfg.name).iterdir())
    assert loop.resume(half) == half
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(half / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 1
    for module, weights in a["modules"].items():
        for key, value in weights.items():
            assert torch.equal(value, b["modules"][module][key]), f"{module}.{key} differs after resume"


@pytest.mark.parametrize("method", BACKENDS)
def test_every_backend_dry_run_prints_its_parameters(method, capsys, tmp_path):
    from predvis.cli import main

    assert main(["train", _experiment_of(method), "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"method: {method}" in out and "params: " in out
    assert not any(tmp_path.iterdir()), "--dry-run wrote files"


PAIRS = [(m, p) for m in BACKENDS for p in probes()]


@pytest.mark.parametrize("method,probe", PAIRS, ids=[f"{m}-{p}" for m, p in PAIRS])
def test_every_probe_runs_on_every_backend_it_applies_to(method, probe, trained, tmp_path):
    spec = probes()[probe]
    source = trained(method)
    _, loaded = load_trained(source, device="cpu")
    if not spec.applies_to(loaded):
        pytest.skip(f"{probe} does not apply to {method} (its capabilities)")
    run = tmp_path / "run"
    shutil.copytree(source, run)   # probes write into the run: keep the shared one clean
    out = spec.run(run, spec.smallest(loaded), tmp_path / "runs", "smoke")
    assert out.is_dir() and (out / "summary.json").exists(), f"{probe} wrote no summary in {out}"
