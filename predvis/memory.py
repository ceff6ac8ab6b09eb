"""Will it fit? A stated estimate of a run's memory, checked before the data and model are built.

The estimate counts what predvis itself holds for the whole run (float32, 4 bytes a value):

* the data tensors, as each backend's ``Method.data_memory(cfg)`` states them (GOPC: validation and test
  sequences and one training batch; PVM: the training videos and held-out sequences; depth inversion: the
  training, validation and four test scene sets);
* the model: its state as a checkpoint holds it (weights and buffers), and the gradients and Adam's two
  moments (3 x trainable parameters) when it has an optimiser (counted once the model is built).

Activations and the framework's own overhead come on top, so a run that needs more than the machine's
available memory (``MemAvailable``) is refused, one that needs a little less may still fail.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from predvis.errors import ConfigError

FLOAT = 4   # bytes per float32
GIB = 2**30


def available_bytes() -> int | None:
    """Memory available to a new process now (psutil if installed, else Linux's /proc/meminfo, else
    sysconf); None when none of them answers."""
    try:
        import psutil  # optional

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def model_items(method) -> list[tuple[str, int]]:
    """(what, bytes) of a built method's model state (weights and buffers, as its checkpoint holds them) and,
    when it has an optimiser, its parameters' gradients and Adam's two moments (3 x trainable parameters)."""
    import torch

    state = sum(t.numel() * t.element_size() for module in method.state_modules().values()
                for t in module.state_dict().values() if isinstance(t, torch.Tensor))
    params = sum(int(n) for n in method.param_counts().values())
    items = [(f"model state ({params:,} parameters)", state)]
    if method.optimizers():
        items.append(("gradients and Adam state", 3 * params * FLOAT))
    return items


def gib(n: int) -> str:
    if n >= 100 * GIB:
        return f"{n / GIB:,.0f} GiB"
    return f"{n / GIB:.3g} GiB" if n >= GIB / 100 else f"{n / 2**20:.3g} MiB"


def describe(items: list[tuple[str, int]]) -> str:
    """``~X GiB (what a, what b)``, the largest parts first."""
    total = sum(n for _, n in items)
    parts = ", ".join(f"{what} {gib(n)}" for what, n in sorted(items, key=lambda i: -i[1]))
    return f"~{gib(total)} ({parts})"


def build_within(data: list[tuple[str, int]], construct: Callable[[], Any]) -> Any:
    """``construct()`` (the method's constructor), checked: ``data`` (the Method's ``data_memory(cfg)``)
    before it runs, an allocation failure inside it, and data plus the built model's state after it, each
    as one :class:`ConfigError`."""
    check_fits(data)
    try:
        method = construct()
    except (MemoryError, RuntimeError) as err:  # torch's allocators raise RuntimeError subclasses
        if not isinstance(err, MemoryError) and "memory" not in str(err).lower():
            raise
        raise ConfigError(f"out of memory while building the data and model ({describe(data)} of data "
                          f"estimated); lower the sizes") from None
    check_fits(data + model_items(method))
    return method


def check_fits(items: list[tuple[str, int]], available: int | None = None) -> None:
    """One line, before any allocation, when ``items`` need more than the available memory."""
    available = available_bytes() if available is None else available
    total = sum(n for _, n in items)
    if available is not None and total > available:
        raise ConfigError(f"this run needs {describe(items)}, this machine has {gib(available)} available; "
                          f"lower the sizes (data.*_sequences, data.frames, data.size, batch_size, model sizes)")
