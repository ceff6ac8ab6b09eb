"""The GOPC-2 stability study: which stabilisers keep GOPC-2 finite, whether the
default beats GOPC-1's prior, and whether r^H carries the slow variables of the trajectories.

    predvis study gopc2_stability --profile quick --seeds 5
    predvis study gopc2_stability --study runs/gopc2_study/<stamp>_quick   # continue

Jobs (every one a normal run directory under ``--runs``):
- ``gopc1`` and ``gopc1-open`` (``REFERENCES``): GOPC-1 on the same profile, trained closed-loop (its
  default) and with GOPC-2's open-loop fraction, seeds 0..``--ref-seeds``-1 (the side-by-side references);
- ``default``: GOPC-2 with the default settings, seeds 0..``--seeds``-1, the full schedule;
- the other stabiliser settings (``VARIANTS``), seeds 0..``--short-seeds``-1, for ``--short-epochs``
  epochs only (a shortened budget: they are run until they diverge or the budget ends).

A job whose model already has a finished run under ``--runs`` with the same merged config (apart from
``train.threads``; e.g. the GOPC-1 reference and make reproduce-tables' ``gopc1`` cell, seed 0) is
evaluated from that run instead of being trained again (its record says ``reused``).

The study folder (``--runs``/gopc2_study/<stamp>_<profile>/) holds one JSON record per finished job
(``jobs/``) and ``tables/gopc2_stability.md``, rewritten after every job, so a partial study reports what
has finished. Several processes may work on one study folder at once (``--study DIR`` in each): the job
runner (:mod:`predvis.jobs`) claims a job with ``jobs/<tag>.claim`` (pid and host); claims of processes
that are gone are taken over.
Each record holds the test-set reconstruction and prior MSE (eval.context frames observed, the rest
predicted), the step at which the loss became NaN/inf (if it did; then the last good checkpoint is
evaluated) and, for GOPC-1 and the default GOPC-2, the ridge-probe R^2 of the generator's slow
trajectory parameters from r^H and from the lower latent r_t.
"""
from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from predvis.errors import PredvisError
from predvis.experiment import finished_run_like
from predvis.jobs import options as jo
from predvis.run import atomic_write_text

DEFAULT_LABEL = "default"
# The "v1" settings: no linear read-out of r^H, r^H held in predicted frames, inner step 1, trained
# closed-loop only, no D; pinned in every stabiliser row so each compares stabilisers alone.
_V1 = ["model.hyper_linear=0", "model.hyper_rollout=hold", "model.hyper_step=1", "train.open_loop=0",
       "model.hyper_dynamics=0"]
# The references, trained on the full schedule with --ref-seeds seeds: label -> (overrides, description).
REFERENCES: dict[str, tuple[list[str], str]] = {
    "gopc1": ([], "GOPC-1 (LSTM prior)"),
    "gopc1-open": (["train.open_loop=0.5"], "GOPC-1 trained with GOPC-2's open-loop fraction (train.open_loop 0.5)"),
}
# label -> (overrides, description). The default (model defaults) is trained on the full schedule.
VARIANTS: dict[str, tuple[list[str], str]] = {
    "default-v1": (_V1,
                   "v1: clip+softmax+spectral+tanh, step 1, no linear read-out, r^H held"),
    "thesis": (_V1 + ["model.hyper=full", "model.stabiliser=none"],
               "full hypernetwork, no stabiliser, r^H step 1 (the thesis)"),
    "thesis+sigmoid": (_V1 + ["model.hyper=full", "model.stabiliser=sigmoid"],
                       "thesis + sigmoid on the predicted vector"),
    "thesis+layernorm": (_V1 + ["model.hyper=full", "model.stabiliser=layernorm"],
                         "thesis + layer norm on the predicted vector"),
    "thesis+gradclip": (_V1 + ["model.hyper=full", "model.stabiliser=none", "train.grad_clip=1"],
                        "thesis + outer gradient clipping at norm 1"),
    "mixture-none": (_V1 + ["model.hyper=mixture", "model.stabiliser=none"],
                     "mixture hypernetwork, no stabiliser"),
    "mixture-clip": (_V1 + ["model.hyper=mixture", "model.stabiliser=clip"],
                     "mixture + clipped inner gradient on r^H"),
    "full-default": (_V1 + ["model.hyper=full", "model.stabiliser=clip+softmax+spectral"],
                     "full hypernetwork, clip + Frobenius bound, no tanh"),
    "default-svd": (_V1 + ["model.stabiliser=clip+softmax+spectral_svd"],
                    "v1 with clip+softmax+spectral (SVD gradient), no bound on r_hat (full schedule)"),
    "default-notanh": (_V1 + ["model.stabiliser=clip+softmax+spectral"],
                       "v1 without tanh on r_hat"),
    "default-nolinear": (["model.hyper_linear=0"], "the default without the linear read-out of r^H"),
    "default-hold": (["model.hyper_rollout=hold"], "the default with r^H held in predicted frames"),
    "default-closed": (["train.open_loop=0"], "the default trained closed-loop only"),
    "default-still": (["model.hyper_dynamics=0"], "the default without D: r^H moves only by its inner step"),
}
SETTINGS = {**VARIANTS, **REFERENCES}   # every label but the default -> (overrides, description)


def plan(seeds: int, ref_seeds: int, short_seeds: int, variants: list[str]) -> list[dict]:
    jobs = []
    for seed in range(max(seeds, ref_seeds)):  # default and reference first: they carry the goal
        if seed < seeds:
            jobs.append({"exp": "gopc2", "label": DEFAULT_LABEL, "seed": seed, "short": False})
        if seed < ref_seeds:
            jobs += [{"exp": "gopc1", "label": label, "seed": seed, "short": False} for label in REFERENCES]
    for seed in range(short_seeds):
        for label in variants:
            jobs.append({"exp": "gopc2", "label": label, "seed": seed, "short": True})
    for j in jobs:
        j["tag"] = f"{j['label']}_s{j['seed']}"
    return jobs


# --------------------------------------------------------------------------- probe

def ridge_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
             alphas=(1e-3, 1e-2, 1e-1, 1, 10, 100, 1000), folds: int = 5) -> np.ndarray:
    """Held-out R^2 per target column of a ridge regression on standardised features; alpha chosen by
    ``folds``-fold cross-validation on the training rows."""
    mx, sx = train_x.mean(0), train_x.std(0) + 1e-8
    my = train_y.mean(0)
    xt, yt = (train_x - mx) / sx, train_y - my

    def fit(x, y, alpha):
        return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)

    idx = np.arange(len(xt)) % folds
    best, best_err = alphas[0], np.inf
    for alpha in alphas:
        err = 0.0
        for f in range(folds):
            tr, va = idx != f, idx == f
            w = fit(xt[tr], yt[tr], alpha)
            err += ((xt[va] @ w - yt[va]) ** 2).sum()
        if err < best_err:
            best, best_err = alpha, err
    w = fit(xt, yt, best)
    pred = ((test_x - mx) / sx) @ w + my
    sst = ((test_y - test_y.mean(0)) ** 2).sum(0)
    return 1 - ((pred - test_y) ** 2).sum(0) / np.maximum(sst, 1e-12)


def slow_targets(params: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Smooth Moving MNIST generator parameters (N, 1, 2, 3) = amplitude, angular frequency, phase per
    axis -> per-sequence targets (N, 2) and per-frame (N, T, 2) velocity a w cos(w t + phi), position
    a sin(w t + phi) and displacement p_t - p_{t-1}."""
    a, w, phi = params[:, 0, :, 0], params[:, 0, :, 1], params[:, 0, :, 2]
    t = np.arange(frames)[None, :, None]
    position = a[:, None] * np.sin(w[:, None] * t + phi[:, None])  # about the trajectory's centre, px
    return {
        "omega": w,                          # turning rate of the trajectory, rad/frame
        "amplitude": a,                      # px
        "speed": a * w,                      # peak speed, px/frame
        "velocity": a[:, None] * w[:, None] * np.cos(w[:, None] * t + phi[:, None]),
        "position": position,
        "displacement": np.diff(position, axis=1, prepend=position[:, :1]),  # p_t - p_{t-1} (0 at t = 0)
    }


def collect(method, seqs, batch: int = 100) -> dict[str, np.ndarray]:
    """Posterior-mean latents r_t (N, T, r) and, for GOPC-2, r^H after each frame (N, T, h)."""
    import torch

    method.model.eval()
    lat, hyp = [], []
    with torch.no_grad():
        for s in range(0, len(seqs), batch):
            out = method.model.run(seqs[s:s + batch].to(method.device), sample=False)
            lat.append(out.latents.float().cpu().numpy())
            if getattr(out, "hyper", None) is not None:
                hyp.append(out.hyper.float().cpu().numpy())
    res = {"latent": np.concatenate(lat)}
    if hyp:
        res["hyper"] = np.concatenate(hyp)
    return res


def probe_sets(method) -> tuple[dict[str, dict], dict[str, dict]]:
    """The probes' data: features (``collect``) and generator targets (``slow_targets``) of 500 fitting
    sequences from the validation digits ("train") and of the test sequences ("test")."""
    frames = method.cfg.data.frames
    train_seqs, train_params = method._fixed_set(method.val_digits, 500, 3, with_params=True)
    test_seqs, test_params = method._fixed_set(method.test_digits, method.cfg.data.test_sequences, 2,
                                               with_params=True)
    feats = {"train": collect(method, train_seqs), "test": collect(method, test_seqs)}
    targets = {"train": slow_targets(train_params, frames), "test": slow_targets(test_params, frames)}
    return feats, targets


def probe(method, context: int) -> dict[str, float]:
    """R^2 on the test sequences of ridge probes fitted on 500 other sequences (validation digits).

    Per-sequence targets (omega, amplitude, speed; both axes) from: r^H after the context frames
    (``hyper@ctx``), r^H after all frames (``hyper@end``), r_t averaged over time (``latent_mean``).
    Per frame (t >= 2): velocity and position from r^H_t (``hyper_t``) and from r_t (``latent_t``);
    displacement p_t - p_{t-1} from those and from the pair [r_t, r_{t-1}] (``latent_pair``)."""
    frames = method.cfg.data.frames
    feats, targets = probe_sets(method)
    views = {"latent_mean": lambda f: f["latent"].mean(1)}
    if "hyper" in feats["train"]:
        views["hyper@ctx"] = lambda f: f["hyper"][:, context - 1]
        views["hyper@end"] = lambda f: f["hyper"][:, -1]
    out = {}
    for view, get in views.items():
        for name in ("omega", "amplitude", "speed"):
            r2 = ridge_r2(get(feats["train"]), targets["train"][name], get(feats["test"]), targets["test"][name])
            out[f"{name}|{view}"] = float(r2.mean())
    every = ("velocity", "position", "displacement")
    per_frame = {"latent_t": (lambda f: f["latent"], every), "hyper_t": (lambda f: f.get("hyper"), every),
                 "latent_pair": (lambda f: np.concatenate([f["latent"][:, 1:], f["latent"][:, :-1]], -1),
                                 ("displacement",))}
    for view, (get, names) in per_frame.items():
        x = {s: get(feats[s]) for s in feats}  # (N, T, d), or (N, T - 1, d) for the pair (frames 1..T-1)
        if x["train"] is None:
            continue
        for name in names:
            fx = {s: x[s][:, -(frames - 2):].reshape(-1, x[s].shape[-1]) for s in feats}  # frames t >= 2
            fy = {s: targets[s][name][:, 2:].reshape(-1, 2) for s in feats}
            out[f"{name}|{view}"] = float(ridge_r2(fx["train"], fy["train"], fx["test"], fy["test"]).mean())
    return out


# --------------------------------------------------------------------------- one job

def evaluate(method) -> dict[str, float]:
    seqs = method.test_sequences()
    c = method.cfg.eval.context
    out = method.rollouts(seqs, c)
    mean_frame = method.val_set.mean(dim=(0, 1), keepdim=True)
    return {
        "recon_mse": ((out["recon"] - seqs) ** 2).mean().item(),
        "prior_mse": ((out["prior"][:, c:] - seqs[:, c:]) ** 2).mean().item(),
        "copy_last_mse": ((seqs[:, c - 1:c] - seqs[:, c:]) ** 2).mean().item(),
        "mean_frame_mse": ((mean_frame - seqs[:, c:]) ** 2).mean().item(),
        "test_sequences": len(seqs),
    }


def job_overrides(job: dict, threads: int, short_epochs: int, extra: list[str]) -> list[str]:
    """The KEY=VALUE overrides one study job trains with: its setting's, its seed and threads, the
    study's ``extra`` (e.g. a reproduce cell's), and the short budget for a short job."""
    overrides = list(SETTINGS[job["label"]][0]) if job["label"] in SETTINGS else []
    overrides += [f"seed={job['seed']}", f"train.threads={threads}"] + list(extra)
    if job["short"]:
        overrides.append(f"train.epochs={short_epochs}")
    return overrides


def run_job(job: dict, profile: str, runs_root: Path, threads: int, short_epochs: int, extra: list[str]) -> dict:
    import torch

    from predvis.config import parse_overrides
    from predvis.experiment import load_experiment
    from predvis.errors import TrainingDiverged
    from predvis import experiment
    from predvis.train import loop

    overrides = job_overrides(job, threads, short_epochs, extra)
    cfg = load_experiment(job["exp"], profile, overrides)
    steps_per_epoch = -(-cfg.data.train_sequences // cfg.train.batch_size)
    record = {**job, "overrides": overrides, "budget_steps": cfg.train.epochs * steps_per_epoch,
              "nan_step": None, "run": None}
    started = time.perf_counter()
    before = set((runs_root / cfg.name).iterdir()) if (runs_root / cfg.name).exists() else set()
    reused = finished_run_like(runs_root, cfg.name, cfg.to_dict())
    try:
        if reused is not None:   # e.g. make reproduce-tables' gopc1 cell, seed 0: the same model, not retrained
            record["run"], record["reused"] = str(reused), True
            print(f"job {job['tag']}: reusing the finished run {reused} (same config)", file=sys.stderr)
        else:
            record["run"] = str(loop.train(cfg, runs_root, parse_overrides(overrides)))
    except TrainingDiverged as err:
        found = re.search(r"step (\d+)", str(err))
        record["nan_step"] = int(found.group(1)) if found else -1
        record["message"] = str(err)
        new = sorted(set((runs_root / cfg.name).iterdir()) - before)
        record["run"] = str(new[-1]) if new else None
    record["seconds"] = time.perf_counter() - started
    run = Path(record["run"]) if record["run"] else None
    if run is not None and (run / "checkpoints" / "last.pt").exists():
        _, method = experiment.load_trained(run, which="last" if record["nan_step"] else "best")
        torch.set_num_threads(threads)
        record.update(evaluate(method))
        record["evaluated"] = "last good checkpoint" if record["nan_step"] else "best checkpoint"
        if not job["short"]:
            record["probe"] = probe(method, method.cfg.eval.context)
    return record


# --------------------------------------------------------------------------- table

def _ms(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def write_table(study: Path, jobs: list[dict], profile: str) -> str:
    recs = {}
    for path in sorted((study / "jobs").glob("*.json")):
        rec = json.loads(path.read_text())
        recs[rec["tag"]] = rec
    planned: dict[str, list[dict]] = {}
    for j in jobs:
        planned.setdefault(j["label"], []).append(j)
    lines = [f"# GOPC-2 stability study ({profile} profile)", "",
             "Smooth Moving MNIST; MSE per pixel on the test sequences (the same set and seeds for every row); "
             "prior MSE over the frames after the context frames, the model's own latents fed back "
             "(docs/models.md, GOPC-2). `NaN at step` lists, per diverged seed, the step at which the loss became "
             "NaN/inf; the MSE columns average the seeds that finished and, for diverged seeds, their last good "
             "checkpoint (the end of the last finished epoch; marked *). Rows marked 'short' ran a shortened budget "
             "(the steps shown), not the full schedule.", ""]
    head = "| setting | what | budget (steps) | seeds done | NaN fraction | NaN at step | recon MSE | prior MSE |"
    lines += [head, "|---|---|---|---|---|---|---|---|"]
    baseline = None
    for label, js in planned.items():
        done = [recs[j["tag"]] for j in js if j["tag"] in recs]
        what = ("GOPC-2 defaults (experiments/gopc2.yaml)" if label == DEFAULT_LABEL
                else SETTINGS[label][1])
        nan = [r for r in done if r["nan_step"]]
        budget = done[0]["budget_steps"] if done else "-"
        budget = f"{budget}{' (short)' if js[0]['short'] else ''}"
        star = "*" if nan and any(r.get("recon_mse") is not None for r in nan) else ""
        lines.append(
            f"| {label} | {what} | {budget} | {len(done)}/{len(js)} | "
            f"{len(nan)}/{len(done) if done else '-'} | {', '.join(str(r['nan_step']) for r in nan) or '-'} | "
            f"{_ms([r.get('recon_mse') for r in done])}{star} | {_ms([r.get('prior_mse') for r in done])}{star} |")
        for r in done:
            if baseline is None and r.get("copy_last_mse") is not None:
                baseline = r
    if baseline:
        lines += ["", f"Baselines on the same {baseline['test_sequences']} test sequences and frames: copy last context "
                  f"frame {baseline['copy_last_mse']:.4f}, mean frame {baseline['mean_frame_mse']:.4f}."]
    # per seed, side by side
    lines += ["", "## GOPC-2 default vs GOPC-1, per seed (full schedule, same test set)", "",
              "| seed | GOPC-1 recon | GOPC-1 prior | GOPC-1 open-loop recon | GOPC-1 open-loop prior | GOPC-2 recon "
              "| GOPC-2 prior | GOPC-2 prior < GOPC-1 prior | GOPC-2 prior < GOPC-1 open-loop prior |",
              "|---|---|---|---|---|---|---|---|---|"]
    seeds = sorted({j["seed"] for j in jobs if not j["short"]})
    f = lambda r, k: f"{r[k]:.4f}" if r and r.get(k) is not None else "-"  # noqa: E731

    def lower(b: dict | None, ref: str, s: int) -> str:
        a = recs.get(f"{ref}_s{s}")
        vs = ""
        if not a and recs.get(f"{ref}_s0"):
            a, vs = recs[f"{ref}_s0"], " (vs seed 0)"
        if not (a and b and a.get("prior_mse") and b.get("prior_mse")):
            return "-"
        return ("yes" if b["prior_mse"] < a["prior_mse"] else "no") + vs

    for s in seeds:
        a, o, b = recs.get(f"gopc1_s{s}"), recs.get(f"gopc1-open_s{s}"), recs.get(f"{DEFAULT_LABEL}_s{s}")
        lines.append(f"| {s} | {f(a, 'recon_mse')} | {f(a, 'prior_mse')} | {f(o, 'recon_mse')} | {f(o, 'prior_mse')} | "
                     f"{f(b, 'recon_mse')} | {f(b, 'prior_mse')} | {lower(b, 'gopc1', s)} | {lower(b, 'gopc1-open', s)} |")
    # probes
    probes = {lab: [recs[j["tag"]]["probe"] for j in js if j["tag"] in recs and "probe" in recs[j["tag"]]]
              for lab, js in planned.items()}
    keys = [("omega", "w (turning rate)"), ("amplitude", "a"), ("speed", "peak speed a w"),
            ("velocity", "velocity a w cos(w t + phi), per frame"), ("position", "position a sin(w t + phi), per frame"),
            ("displacement", "displacement p_t - p_{t-1}, per frame")]
    views = ("hyper@ctx", "hyper@end", "hyper_t", "latent_mean", "latent_t", "latent_pair")
    rows = []
    for lab, plist in probes.items():
        if not plist:
            continue
        name = {"gopc1": "GOPC-1", "gopc1-open": "GOPC-1 open-loop"}.get(lab, f"GOPC-2 {lab}")
        for key, desc in keys:
            cells = []
            for view in views:
                vals = [p.get(f"{key}|{view}") for p in plist]
                vals = [v for v in vals if v is not None]
                cells.append(_ms(vals) if vals else "")
            rows.append(f"| {name} ({len(plist)} seeds) | {desc} | " + " | ".join(cells) + " |")
    if rows:
        lines += ["", "## Does r^H carry the slow variables? Ridge-probe R^2 on held-out test sequences", "",
                  "Linear (ridge, alpha by 5-fold CV) probes fitted on 500 sequences from the validation digits, "
                  "scored on the test sequences; R^2 averaged over the x and y axes; mean ± std over seeds. Per-sequence "
                  "targets (w, a, a w) from r^H after the context frames, r^H after all frames, or the lower latent r_t "
                  "averaged over all frames; per-frame targets (t >= 2) from r^H_t, r_t or the pair (r_t, r_{t-1}).", "",
                  "| model | target | r^H after context | r^H at the end | r^H_t | mean r_t | r_t | r_t, r_{t-1} |",
                  "|---|---|---|---|---|---|---|---|"] + rows
    missing = [j["tag"] for j in jobs if j["tag"] not in recs]
    if missing:
        lines += ["", f"Not finished yet ({len(missing)}): {', '.join(missing)}. Continue with "
                  f"`python -m predvis.studies.gopc2_stability --study {study}`."]
    text = "\n".join(lines) + "\n"
    (study / "tables").mkdir(exist_ok=True)
    tmp = study / "tables" / ".gopc2_stability.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, study / "tables" / "gopc2_stability.md")
    return text


# --------------------------------------------------------------------------- main

def command(
    profile: str = typer.Option("quick", help="smoke | quick | full | long"),
    seeds: int = typer.Option(5, help="seeds of the default GOPC-2 (full schedule)"),
    ref_seeds: int = typer.Option(1, help="seeds of the GOPC-1 reference (full schedule)"),
    short_seeds: int = typer.Option(1, help="seeds of each other stabiliser setting"),
    short_epochs: int = typer.Option(2, help="epochs of the shortened budget"),
    variants: str = typer.Option(",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS)),
    only: str = typer.Option("", help="comma-separated labels to run in this process (others skipped)"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="root of run directories"),
    out: Optional[Path] = typer.Option(None, "--out", hidden=True, help="old name of --runs"),
    study: Optional[Path] = typer.Option(None, help="continue this study folder"),
    threads: int = typer.Option(1, help="torch threads per model"),
    table_only: bool = typer.Option(False, help="only (re)write the table from finished jobs"),
    publish: Optional[Path] = typer.Option(None, help="also write the table to this path (e.g. tables/gopc2_stability.md)"),
    extra: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides for every job"),
    workers: int = jo.WORKERS, launcher: str = jo.LAUNCHER, slurm_partition: str = jo.PARTITION,
    slurm_gpus: int = jo.GPUS, slurm_cpus: int = jo.CPUS, slurm_time: str = jo.TIME, slurm_mem: int = jo.MEM,
) -> int:
    """The GOPC-2 stability study (docs/models.md, GOPC-2): every stabiliser setting beside GOPC-1."""
    out = runs if out is None else out
    from predvis.config import suggest

    picked = [v for v in variants.split(",") if v]
    for v in picked:
        if v not in VARIANTS:
            raise PredvisError(f"--variants: unknown '{v}'{suggest(v, list(VARIANTS))} (known: {', '.join(VARIANTS)})")
    if min(seeds, ref_seeds, short_seeds) < 0 or short_epochs < 1:
        raise PredvisError("--seeds, --ref-seeds and --short-seeds must be >= 0 and --short-epochs >= 1")
    runs_root = Path(out)
    if study is not None:
        try:
            saved = json.loads((study / "study.json").read_text())
        except (OSError, ValueError):
            raise PredvisError(f"--study: {study} is not a GOPC-2 study folder (no readable study.json)") from None
        profile, jobs = saved["profile"], saved["jobs"]
        short_epochs, extra = saved["short_epochs"], saved["extra"]
        runs_root = Path(saved["runs_root"])
    else:
        study = runs_root / "gopc2_study" / f"{time.strftime('%Y%m%d-%H%M%S')}_{profile}"
        (study / "jobs").mkdir(parents=True)
        jobs = plan(seeds, ref_seeds, short_seeds, picked)
        extra = list(extra or [])
        atomic_write_text(study / "study.json", json.dumps({
            "profile": profile, "jobs": jobs, "short_epochs": short_epochs, "extra": extra,
            "runs_root": str(runs_root), "argv": sys.argv}, indent=2))
    print(f"study folder: {study}", file=sys.stderr)
    run_with = jo.launcher_from(launcher, workers, runs_root, slurm_partition, slurm_gpus, slurm_cpus, slurm_time,
                                slurm_mem, threads=max(threads, 1))
    failures = []
    if not table_only:
        from predvis.jobs.runner import Job, run

        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        picked_labels = {o for o in only.split(",") if o}
        job_fn = functools.partial(run_job, profile=profile, runs_root=runs_root, threads=threads,
                                   short_epochs=short_epochs, extra=extra)
        todo = [Job(job["tag"], job_fn, job, record=study / "jobs" / f"{job['tag']}.json",
                    claim=study / "jobs" / f"{job['tag']}.claim")
                for job in jobs if not picked_labels or job["label"] in picked_labels]

        def finished(outcome) -> None:   # in this process, after each model
            if outcome.state == "failed":
                failures.append(f"{outcome.job.name}: {outcome.message}")
            write_table(study, jobs, profile)

        run(todo, run_with, on_done=finished, title="GOPC-2 stability study")
    text = write_table(study, jobs, profile)
    if publish is not None:
        publish.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(publish, text)
    print(text)
    print(study)
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failures else 0
