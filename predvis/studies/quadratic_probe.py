"""Quadratic probes of the generator's per-sequence parameters (docs/models.md, GOPC-2, "Measured: r^H's
dynamics D").

A velocity-like state changes sign when a Smooth Moving MNIST trajectory's phase moves by pi, while its
turning rate w, amplitude a and peak speed a w do not, so no linear read-out of such a state gives them.
This asks whether they are there as even functions: ridge regressions (the study's ``ridge_r2``, fitted on
500 sequences from the validation digits, scored on the test sequences, R^2 averaged over both axes) on

- ``@end quadratic`` / ``@ctx quadratic``: the state after all frames / after the context frames, its
  standardised entries and all their pairwise products;
- ``second moments over frames`` / ``over context``: the state's mean and its second moments
  mean_t s_t s_t^T over frames t >= 2 (of all frames / of the context frames).

The state is r^H for GOPC-2 and the lower latent r_t for GOPC-1 / VAE-1.

    predvis study quadratic_probe OUT.json RUN [RUN ...]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import typer

from predvis.studies.gopc2_stability import probe_sets, ridge_r2

TARGETS = ("omega", "amplitude", "speed")


def quadratic(x: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, d + d (d + 1) / 2): standardised entries and their pairwise products (i <= j)."""
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    i, j = np.triu_indices(x.shape[1])
    return np.concatenate([x, x[:, i] * x[:, j]], 1)


def second_moments(seq: np.ndarray) -> np.ndarray:
    """(N, T, d) -> (N, d + d (d + 1) / 2): mean over frames t >= 2 of s_t and of s_t s_t^T (i <= j)."""
    s = seq[:, 2:]
    i, j = np.triu_indices(s.shape[2])
    return np.concatenate([s.mean(1), (s[:, :, i] * s[:, :, j]).mean(1)], 1)


def probe_run(run: Path) -> dict[str, float]:
    """R^2 per '<target>|<state><view>' for one finished run's best checkpoint."""
    from predvis import experiment

    _, method = experiment.load_trained(run, which="best")
    context = method.cfg.eval.context
    feats, targets = probe_sets(method)
    state = "hyper" if "hyper" in feats["train"] else "latent"
    views = {
        "@end quadratic": lambda f: quadratic(f[state][:, -1]),
        "@ctx quadratic": lambda f: quadratic(f[state][:, context - 1]),
        " second moments over frames": lambda f: second_moments(f[state]),
        " second moments over context": lambda f: second_moments(f[state][:, :context]),
    }
    out = {}
    for view, get in views.items():
        x_fit, x_test = get(feats["train"]), get(feats["test"])
        for name in TARGETS:
            r2 = ridge_r2(x_fit, targets["train"][name], x_test, targets["test"][name])
            out[f"{name}|{state}{view}"] = float(r2.mean())
    return out


def command(
    out: Path = typer.Argument(..., help="JSON file to write: {run: {'<target>|<view>': R^2}}"),
    runs: List[Path] = typer.Argument(..., help="finished GOPC-1 / VAE-1 / GOPC-2 run directories"),
) -> int:
    """Quadratic probes of the generator's per-sequence parameters from a model's state (docs/models.md)."""
    from predvis.run import atomic_write_text

    results = {}
    for run in runs:
        results[str(run)] = probe_run(Path(run))
        print(run, json.dumps({k: round(v, 3) for k, v in results[str(run)].items()}), flush=True)
    atomic_write_text(Path(out), json.dumps(results, indent=1) + "\n")
    return 0
