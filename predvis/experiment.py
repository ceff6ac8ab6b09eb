"""The one door from a config to a Method: build one, reload a trained one, find one already trained.

``load_experiment`` merges an experiment file with a profile and overrides and checks it against the
schemas of the backend it names (:mod:`predvis.backends.registry`). ``build_method`` makes the Method on
its device with every RNG seeded. ``load_trained`` reads a run directory back: its saved config
(migrated: keys added since the run was made read with the meaning they had then) and its weights.
``finished_run_like`` finds a finished run of the same config so a study can reuse it.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from predvis.allocator import tune_cpu_allocator
from predvis import checkpoint, memory
from predvis.backends.registry import get_method
from predvis.config import (
    ExperimentConfig, build_config, default_profile, dump_yaml, parse_overrides, read_yaml, resolve_experiment,
)
from predvis.errors import ConfigError, RunError
from predvis.progress import console, is_quiet
from predvis.run import RUNTIME_KEYS, STAMP_FORMAT, config_apart_from, iter_runs
from predvis.runtime import distributed
from predvis.runtime.device import seed_everything, select_device
from predvis.runtime.method import Method

# --------------------------------------------------------------------------- saved configs and their migration

# Model keys added after runs were saved, per method: the value that reproduces how those runs were
# trained and evaluated (a saved config lacking the key reads it with this value, not today's default).
ABSENT_IN_SAVED: dict[str, dict[str, Any]] = {
    "gopc2": {"hyper_linear": 0.0, "hyper_rollout": "hold", "hyper_dynamics": 0},
}

# Per method, the moment (STAMP_FORMAT) from which the same config trains differently than before;
# runs made earlier are not reused as that model. GOPC-2: r^H's inner step no longer differentiates
# through r_t's inference during training.
TRAINING_CHANGED: dict[str, str] = {
    "gopc2": "2026-12-01T20:00:00+0000",
}


def load_experiment(name_or_path: str, profile: str | None = None, overrides: list[str] | None = None
                    ) -> ExperimentConfig:
    """The merged, checked config of an experiment name (``experiments/<name>.yaml``) or YAML path."""
    path = resolve_experiment(name_or_path)
    raw = read_yaml(path)
    return build_config(raw, profile or default_profile(), parse_overrides(overrides or []), str(path), get_method)


def config_from_dict(raw: dict, profile: str, overrides: dict, source: str) -> ExperimentConfig:
    """:func:`predvis.config.build_config` with the registry's schemas."""
    return build_config(raw, profile, overrides, source, get_method)


def migrate_saved(data: dict) -> dict:
    """A saved ``config.yaml`` mapping as today's schema reads it (see :data:`ABSENT_IN_SAVED`)."""
    data = dict(data)
    absent = ABSENT_IN_SAVED.get(str(data.get("method")), {})
    if absent and isinstance(data.get("model"), dict):
        data["model"] = {**absent, **data["model"]}
    return data


def config_from_saved(data: dict, source: str) -> ExperimentConfig:
    """Rebuild a config saved in a run's config.yaml (already merged: no profiles)."""
    data = migrate_saved(data)
    profile = data.pop("profile", "quick")
    return build_config(data, profile, {}, source, get_method)


def load_run_config(run: Path) -> ExperimentConfig:
    """The config a run directory was made with; one line if it is not a run."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"run not found: {run}")
    if not (run / "config.yaml").exists():
        raise RunError(f"{run} is not a predvis run (no config.yaml)")
    return config_from_saved(read_yaml(run / "config.yaml"), str(run / "config.yaml"))


# --------------------------------------------------------------------------- building and reloading

def build_method(cfg: ExperimentConfig) -> tuple[Method, torch.device]:
    """The Method of ``cfg`` on its device (the rank's device under torchrun), every RNG seeded."""
    device = distributed.init(cfg.device) or select_device(cfg.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    tune_cpu_allocator()  # freed activations are reused, not page-faulted in again (same numbers)
    seed_everything(cfg.seed)
    console.quiet = is_quiet() or not distributed.is_main()
    method_class = get_method(cfg.method)
    if distributed.world_size() > 1 and not method_class.supports_distributed:
        raise ConfigError(f"method '{cfg.method}' does not train data-parallel yet; run it in one process")
    return memory.build_within(method_class.data_memory(cfg), lambda: method_class(cfg, device)), device


def checkpoint_path(run: Path, which: str = "best") -> Path:
    """``checkpoints/<which>.pt`` of a run, else its ``last.pt``."""
    path = Path(run) / "checkpoints" / f"{which}.pt"
    return path if path.exists() else Path(run) / "checkpoints" / "last.pt"


def load_trained(run: Path, which: str = "best", device: str | None = None) -> tuple[ExperimentConfig, Method]:
    """Config and method of a run, with its ``best.pt`` (else ``last.pt``) weights loaded, in eval mode."""
    cfg, method, _ = load_trained_from(run, which, device)
    return cfg, method


def load_trained_from(run: Path, which: str = "best", device: str | None = None,
                      with_training_state: bool = False) -> tuple[ExperimentConfig, Method, dict]:
    """:func:`load_trained`, plus which checkpoint it read: ``{"file": "checkpoints/best.pt",
    "epochs": finished epochs, "step": optimiser steps, "path": Path}`` (from the checkpoint's own payload).
    ``with_training_state``: also the optimisers, schedulers and RNG state (training continues exactly)."""
    cfg = load_run_config(run)
    if device is not None:
        cfg.device = device
    method, _ = build_method(cfg)
    path = checkpoint_path(run, which)
    ckpt = checkpoint.load_checkpoint(path, method.device)
    checkpoint.restore(method, ckpt, path, with_training_state=with_training_state)
    method.train_mode(False)
    info = {"file": f"checkpoints/{path.name}", "epochs": int(ckpt.get("epoch", -1)) + 1,
            "step": int(ckpt.get("step", 0)), "best_val": float(ckpt.get("best_val", float("inf"))), "path": path}
    return cfg, method, info


def describe(cfg: ExperimentConfig, method: Method) -> str:
    """The merged config as YAML and the parameter count of every module."""
    lines = [dump_yaml(cfg.to_dict()).rstrip()]
    for name, count in method.param_counts().items():
        lines.append(f"params: {count}  ({name})")
    available = memory.available_bytes()
    lines.append(f"memory: {memory.describe(type(method).data_memory(cfg) + memory.model_items(method))}"
                 + (f" of {memory.gib(available)} available" if available is not None else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------- reusing finished runs

def finished_run_like(root: Path, experiment: str, config: dict,
                      ignore: tuple[tuple[str, str], ...] = RUNTIME_KEYS) -> Path | None:
    """The oldest finished run under ``root/experiment`` (``status.json`` done, ``checkpoints/best.pt``
    present) whose saved merged config, read as :func:`config_from_saved` reads it (keys
    added since then with the meaning they had), equals ``config`` (a ``cfg.to_dict()``) but for the
    ``ignore`` keys, and that was created (``env.json``) after its method's :data:`TRAINING_CHANGED`
    moment, if it has one; None if there is none. Lets a study reuse
    a model another job already trained."""
    wanted = config_apart_from(config, ignore)
    for run in sorted(iter_runs(root, experiment)):
        try:
            saved = yaml.safe_load((run / "config.yaml").read_text())
            state = json.loads((run / "status.json").read_text()).get("state")
            # the model it was: keys added since it was saved read with their old meaning
            saved_cfg = config_from_saved(saved, str(run / "config.yaml")) if isinstance(saved, dict) else None
        except (OSError, ValueError, yaml.YAMLError, ConfigError):
            continue
        if saved_cfg is None or state != "done" or not (run / "checkpoints" / "best.pt").exists():
            continue
        # a model whose training changed since the run was made is not that model any more
        changed = TRAINING_CHANGED.get(saved_cfg.method, "")
        if changed and not _made_after(run, changed):
            continue
        if config_apart_from(saved_cfg.to_dict(), ignore) == wanted:
            return run
    return None


def _made_after(run: Path, moment: str) -> bool:
    """Whether ``run`` was created (env.json's "created", STAMP_FORMAT) at or after ``moment`` (the same
    format); False when either cannot be read."""
    try:
        created = json.loads((run / "env.json").read_text()).get("created", "")
        return datetime.strptime(created, STAMP_FORMAT) >= datetime.strptime(moment, STAMP_FORMAT)
    except (OSError, TypeError, ValueError, AttributeError):
        return False
