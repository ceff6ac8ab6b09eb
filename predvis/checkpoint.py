"""Checkpoints: what one holds, how it is read back, and in-memory snapshots.

A checkpoint (``checkpoints/last.pt``, ``best.pt``) is a dict of plain types and tensors, loadable with
``weights_only=True``: the weights of every module a Method names (``state_modules``), its optimisers,
schedulers and grad scalers, every RNG state, the epoch and step it ended, the best validation score so
far and the Method's ``extra_state``. Writing it atomically is :func:`predvis.run.atomic_torch_save`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from predvis.errors import RunError

FORMAT = 1


def payload(method: Any, epoch: int, step: int, best: float) -> dict:
    """Everything needed to continue training ``method`` exactly after ``epoch`` (0-based) and ``step``."""
    scalers = method.scalers()
    return {
        "format": FORMAT,
        "method": method.cfg.method,
        "epoch": epoch,
        "step": step,
        "best_val": best,
        "modules": {k: m.state_dict() for k, m in method.state_modules().items()},
        "optimizers": {k: o.state_dict() for k, o in method.optimizers().items()},
        "schedulers": {k: s.state_dict() for k, s in method.schedulers().items()},
        "scalers": {k: s.state_dict() for k, s in scalers.items()},
        "rng": rng_state(),
        "extra": method.extra_state(),
    }


def estimated_bytes(method: Any) -> int:
    """Bytes of one checkpoint of ``method`` once it has trained a step: its modules' states plus two moment
    tensors per trainable parameter of every optimiser (Adam's; online learners without one add nothing)."""
    state = sum(t.numel() * t.element_size() for module in method.state_modules().values()
                for t in module.state_dict().values() if torch.is_tensor(t))
    moments = sum(2 * p.numel() * p.element_size() for opt in method.optimizers().values()
                  for group in opt.param_groups for p in group["params"] if p.requires_grad)
    return state + moments


def disk_needed(method: Any) -> int:
    """Disk a training run needs beyond what it has: ``last.pt`` and ``best.pt``, one temporary copy while a
    checkpoint is written atomically, and 8 MiB for metrics, plots and tables."""
    return 3 * estimated_bytes(method) + 8 * 2**20


def restore(method: Any, ckpt: dict, path: Path, with_training_state: bool = True) -> None:
    """Load a checkpoint's weights (and optimiser / scheduler / scaler / RNG state) into a built method."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "modules" not in ckpt:
        raise RunError(f"checkpoint {path} is not a predvis checkpoint")
    if ckpt.get("method") != method.cfg.method:
        raise RunError(f"checkpoint {path} holds a '{ckpt.get('method')}' model, not '{method.cfg.method}'")
    for name, module in method.state_modules().items():
        if name not in ckpt["modules"]:
            raise RunError(f"checkpoint {path} lacks the weights of '{name}'")
        try:
            module.load_state_dict(ckpt["modules"][name])
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else first[0]
            raise RunError(f"checkpoint {path} does not fit the configured '{name}': {detail[:150]}") from None
    method.load_extra_state(ckpt.get("extra", {}))
    if not with_training_state:
        return
    scalers = method.scalers()
    for kind, objects in (("optimizers", method.optimizers()), ("schedulers", method.schedulers()),
                          ("scalers", scalers)):
        for name, obj in objects.items():
            if name in ckpt.get(kind, {}):
                obj.load_state_dict(ckpt[kind][name])
    set_rng_state(ckpt["rng"])


def snapshot(method: Any) -> dict:
    """A deep copy, in memory, of everything training changes (weights, optimisers, schedulers, extra state)."""
    return copy.deepcopy({
        "modules": {k: m.state_dict() for k, m in method.state_modules().items()},
        "optimizers": {k: o.state_dict() for k, o in method.optimizers().items()},
        "schedulers": {k: o.state_dict() for k, o in method.schedulers().items()},
        "extra": method.extra_state(),
    })


def restore_snapshot(method: Any, snap: dict) -> None:
    """Put ``method`` back to a :func:`snapshot` (the snapshot stays usable)."""
    snap = copy.deepcopy(snap)
    for k, m in method.state_modules().items():
        m.load_state_dict(snap["modules"][k])
    for k, o in method.optimizers().items():
        o.load_state_dict(snap["optimizers"][k])
    for k, o in method.schedulers().items():
        o.load_state_dict(snap["schedulers"][k])
    method.load_extra_state(snap["extra"])


def rng_state() -> dict:
    """Every RNG state, as plain types and tensors (loadable with ``weights_only=True``)."""
    import random

    import numpy as np

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    import random

    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a missing or damaged file is one clear line."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"checkpoint {path} is unreadable or truncated ({reason[:120]})") from None
