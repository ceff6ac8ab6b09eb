"""matplotlib (Agg backend, no display) set-up and an atomic PNG writer for line plots."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 100) -> None:
    """Write ``fig`` as PNG atomically and close it (no timestamp metadata: same input, same bytes)."""
    from predvis.run import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def use_log(values: Sequence[float], ratio: float = 10.0) -> bool:
    """A log axis helps when all values are positive and they span more than ``ratio``."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    return bool(len(v)) and bool((v > 0).all()) and v.max() / v.min() > ratio
