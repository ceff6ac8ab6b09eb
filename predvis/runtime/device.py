"""Which device a run computes on, and seeding every RNG it draws from."""
from __future__ import annotations

import random

import numpy as np
import torch

from predvis.errors import ConfigError


def select_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without CUDA, or ``mps`` (Apple GPU) without MPS,
    is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "mps" and not mps_available():
        raise ConfigError("device: 'mps' asked for, but this machine has no Apple GPU (MPS) that torch can use")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: '{name}' asked for, but CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device: '{name}' does not exist ({torch.cuda.device_count()} CUDA devices)")
    return torch.device(name)


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
