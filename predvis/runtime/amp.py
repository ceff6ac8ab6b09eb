"""Mixed precision: ``amp=off|bf16|fp16`` as an autocast context and an optional grad scaler."""
from __future__ import annotations

import contextlib

import torch

from predvis.errors import ConfigError


def autocast(amp: str, device: torch.device):
    """Autocast for ``amp`` on ``device`` (a no-op context for ``off``)."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp: fp16 needs a CUDA device; use bf16 or off on the CPU")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(amp: str, device: torch.device):
    """A GradScaler for fp16 on CUDA, else None."""
    if amp == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
