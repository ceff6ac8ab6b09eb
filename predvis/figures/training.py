"""``plots/loss.png``: a run's training curves from ``metrics/train.csv`` (one row per epoch).

Panels: the training loss against the validation loss; every other train / validation column
(solid: train, dashed: validation; baselines such as ``val_copy_last`` included); the learning
rate. A panel's y axis is logarithmic when its values are positive and span more than 10x.
"""
from __future__ import annotations

import math
from pathlib import Path

from predvis.figures.plots import pyplot, save_figure, use_log
from predvis.run import RunDir, read_csv

NOT_CURVES = {"epoch", "step", "lr", "seconds", "batches_per_s"}


def _column(rows: list[dict], key: str) -> list[float]:
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key, "")))
        except ValueError:
            out.append(math.nan)
    return out


def write_loss_plot(run: Path) -> Path | None:
    """Draw ``<run>/plots/loss.png`` from ``<run>/metrics/train.csv``; None if no epoch finished."""
    run = Path(run)
    rows = read_csv(run / "metrics" / "train.csv")
    if not rows:
        return None
    keys = list(rows[0])
    epochs = _column(rows, "epoch")
    others = [k for k in keys if k not in NOT_CURVES | {"loss", "val_loss"}
              and any(math.isfinite(v) for v in _column(rows, k))]
    has_lr = "lr" in keys and any(math.isfinite(v) for v in _column(rows, "lr"))
    panels = 1 + bool(others) + has_lr
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.3), squeeze=False)
    axes = list(axes[0])
    marker = "o" if len(rows) < 30 else None

    def curves(ax, names: list[str], title: str, ylabel: str) -> None:
        shown = []
        for name in names:
            values = _column(rows, name)
            if not any(math.isfinite(v) for v in values):
                continue
            ax.plot(epochs, values, marker=marker, ms=3, lw=1.3, ls="--" if name.startswith("val_") else "-", label=name)
            shown += values
        if use_log(shown):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if min(epochs) == max(epochs):   # one epoch: a unit-wide axis, so its integer tick shows
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if shown:
            ax.legend(fontsize=7)

    curves(axes[0], ["loss", "val_loss"], "training objective", "loss (epoch mean)")
    if others:
        curves(axes[1], others, "other metrics (dashed: validation)", "value")
    if has_lr:
        curves(axes[-1], ["lr"], "learning rate", "lr")
    state = RunDir(run).status().get("state")
    fig.suptitle(f"{run.parent.name} {run.name}: {len(rows)} epochs" + (f" ({state})" if state else ""), fontsize=10)
    fig.tight_layout()
    save_figure(fig, run / "plots" / "loss.png")
    return run / "plots" / "loss.png"
