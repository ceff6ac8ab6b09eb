"""predict: evaluate a trained run on its test split, the way the GOPC thesis does.

Works on every run whose method offers a stepping model; methods with their own latent rollout
(``rollouts``, GOPC-1 / VAE-1) use it, others are rolled out through the stepping interface.

For each test sequence (N, T frames):
- posterior reconstruction of all T frames (``recon``);
- prior prediction of frames context..T-1 after ``context`` observed frames, the model's own
  latents (GOPC/VAE) or predictions (other stepping models) fed back (``prior``);
- baselines on the same frames: ``copy_last`` (the last context frame repeated) and
  ``mean_frame`` (the per-pixel mean frame of the validation sequences, a constant image).

Writes into ``<run>/predict/<stamp>_<id>/``: metrics/eval.csv (one row per sequence, frame and
predictor), metrics/horizon.csv (per-horizon means), tables/recon.md, tables/prior.md, and per
sample frames/sampleNN.png and gifs/sampleNN.gif (rows: ground truth, prior prediction, |error|,
posterior; predvis/figures/predict.py).
"""
from __future__ import annotations

from pathlib import Path

import torch

from predvis.errors import PredvisError
from predvis.metrics import frame_metrics
from predvis.progress import progress
from predvis.runtime.capabilities import Rollouts, ValidationSequences
from predvis.run import write_csv, atomic_write_text, atomic_write_json
from predvis.tables import markdown_table
from predvis.train.trackers import log_prediction_grids
from dataclasses import dataclass
from predvis.probes.common import closed_loop_after, real_frames, rollout
from predvis.probes.registry import ProbeSpec, has_stepper, register_probe

from predvis.progress import console  # the one stderr console: --quiet silences it

# Reference column. The GOPC thesis is not public: only its parameter counts (and speed, see
# bench) reached us through the issue text; its MSE values are unknown ("not public").
THESIS_PARAMS = {"gopc1": 3_532_610, "vae1": 3_993_986}


@torch.no_grad()
def stepper_rollouts(stepper, seqs: torch.Tensor, context: int, batch_size: int = 50) -> dict[str, torch.Tensor]:
    """Rollouts through the stepping interface, for models without their own ``evaluate``.

    recon[:, t] = prediction of frame t made from the real frames < t (teacher forcing; frame 0
    is copied); prior[:, t] for t >= context = closed loop: each prediction is the next input.
    """
    recon, prior = [], []
    device = getattr(stepper, "device", torch.device("cpu"))
    for start in progress(range(0, len(seqs), batch_size), "rolling out"):
        x = seqs[start:start + batch_size].to(device)
        n, steps = x.shape[:2]
        # teacher forcing: frame 0 copied, then the prediction of frame t+1 made from the real frames <= t
        one = [x[:, 0]] + [out.prediction for _, _, out in rollout(stepper, real_frames(x), steps - 1, n)]
        closed = [frame for _, frame, _ in rollout(stepper, closed_loop_after(x, context), steps, n)]
        recon.append(torch.stack(one, 1).cpu())
        prior.append(torch.stack(closed, 1).cpu())
    return {"recon": torch.cat(recon), "prior": torch.cat(prior)}


def mean_std(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    return values.mean().item(), (values.std().item() if values.numel() > 1 else 0.0)


def predict(run_path: Path, context: int | None = None, limit: int | None = None, figures: int | None = None) -> Path:
    """Evaluate ``run_path`` on its test split and write results; returns the output folder."""
    from predvis.probes.common import check_options, open_probe, take

    check_options({"context": "--context", "limit": "--limit", "figures": "--figures"},
                  context=context, limit=limit, figures=figures)
    probe = open_probe(run_path, "predict", stepping=False)
    cfg, method = probe.cfg, probe.method
    if probe.stepper is None:
        raise PredvisError(f"predict needs a model that predicts frames; {run_path} is a '{cfg.method}' run")
    seqs = take(method.test_sequences(), limit, flag="--limit")
    frames = seqs.shape[1]
    if context is None:   # the run's eval.context; a model without one (a static scene unrolled) gets half its frames
        context = getattr(cfg.eval, "context", None) or max(1, frames // 2)
    if not 0 < context < frames:
        raise PredvisError(f"--context: must be between 1 and {frames - 1}, got {context}")
    console.print(f"evaluating {len(seqs)} test sequences of {seqs.shape[1]} frames, context {context}")
    own_rollout = isinstance(method, Rollouts)   # the model's own latent rollout (GOPC-1 / VAE-1)
    if own_rollout:
        out = method.rollouts(seqs, context)
    else:
        out = stepper_rollouts(probe.stepper, seqs, context)
    baseline = method.validation_sequences() if isinstance(method, ValidationSequences) else seqs
    mean_frame = baseline.mean(dim=(0, 1), keepdim=True)
    predictors = {
        "recon": out["recon"],
        "prior": out["prior"],
        "copy_last": seqs[:, context - 1:context].expand_as(seqs),
        "mean_frame": mean_frame.expand_as(seqs),
    }
    if not own_rollout:   # next-frame prediction: its baseline is the frame before (frame 0 has none)
        predictors["copy_previous"] = torch.cat([seqs[:, :1], seqs[:, :-1]], 1)
    metrics = {name: frame_metrics(pred, seqs) for name, pred in predictors.items()}

    n_fig = getattr(cfg.eval, "figures", 4) if figures is None else figures
    notes = (("context: posterior reconstructions", "posterior reconstruction") if own_rollout
             else ("context: the real frames", "one-step prediction from real frames"))
    settings = {"context": context, "limit": limit, "sequences": len(seqs), "figures": n_fig}
    with probe.output() as staged:
        target = staged.path
        _write_csvs(target, metrics, context, not own_rollout)
        _write_tables(target, cfg, method, metrics, context, len(seqs), not own_rollout)
        _write_figures(target, seqs, out, context, n_fig, f"{getattr(cfg.model, 'kind', cfg.method)} {run_path.name}", notes)
        atomic_write_json(target / "summary.json", probe.summary(settings, {
            f"{k}_mse": metrics[k]["mse"][:, _frames(k, context, seqs.shape[1], not own_rollout)].mean().item()
            for k in metrics}))
    log_prediction_grids(run_path, cfg, sorted((staged.final / "frames").glob("*.png")))
    return staged.final


def _frames(kind: str, context: int, steps: int, one_step: bool = False) -> slice:
    """Frames a predictor is scored on: all for recon (from frame 1 when recon is a one-step prediction,
    whose frame 0 is a copy) and for copy_previous from frame 1; the predicted ones for the others."""
    if kind == "copy_previous" or (kind == "recon" and one_step):
        return slice(1, steps)
    return slice(0, steps) if kind == "recon" else slice(context, steps)


def _write_csvs(target: Path, metrics: dict, context: int, one_step: bool) -> None:
    rows, horizon = [], []
    for kind, m in metrics.items():
        n, steps = m["mse"].shape
        frames = _frames(kind, context, steps, one_step)
        for t in range(frames.start, frames.stop):
            horizon.append({"predictor": kind, "frame": t,
                            "horizon": 0 if kind in ("recon", "copy_previous") else t - context + 1,
                            **{k: v[:, t].mean().item() for k, v in m.items()}})
            for i in range(n):
                rows.append({"sequence": i, "frame": t, "predictor": kind, **{k: v[i, t].item() for k, v in m.items()}})
    write_csv(target / "metrics" / "eval.csv", rows)
    write_csv(target / "metrics" / "horizon.csv", horizon)


def _write_tables(target: Path, cfg, method, metrics: dict, context: int, n: int, one_step: bool) -> None:
    kind = getattr(cfg.model, "kind", cfg.method)
    params = sum(method.param_counts().values())
    ref = THESIS_PARAMS.get(kind)
    steps = metrics["recon"]["mse"].shape[1]

    def row(name, key, frames, ref_params=None):
        m = metrics[key]
        per_seq = m["mse"][:, frames].mean(1)
        mu, sd = mean_std(per_seq)
        return [name, params if key in ("recon", "prior") else "-", mu, sd, m["psnr"][:, frames].mean().item(),
                m["ssim"][:, frames].mean().item(),
                f"{ref_params:,}" if ref_params else "-", "not public" if ref_params else "-"]

    headers = ["model", "params", "mean MSE", "std MSE", "PSNR dB", "SSIM", "thesis params", "thesis MSE"]
    all_f, pred_f = _frames("recon", context, steps, one_step), slice(context, steps)
    recon = [row(kind, "recon", all_f, ref)]
    if one_step:
        recon.append(row("copy previous frame (baseline)", "copy_previous", all_f))
    recon.append(row("mean frame (baseline)", "mean_frame", all_f))
    prior = [row(kind, "prior", pred_f, ref), row("copy last frame (baseline)", "copy_last", pred_f),
             row("mean frame (baseline)", "mean_frame", pred_f)]
    note = (f"\n{n} test sequences; MSE is the per-pixel mean squared error on the [0, 1] scale, averaged over "
            f"the scored frames of a sequence; mean and std are over sequences (docs/metrics.md).\n")
    title = (f"# Next-frame prediction from the real frames, frames 2-{steps} (each from the frames before it)"
             if one_step else f"# Posterior reconstruction (thesis Table 3.1), all {steps} frames")
    atomic_write_text(target / "tables" / "recon.md", title + "\n\n" + markdown_table(headers, recon) + note)
    atomic_write_text(target / "tables" / "prior.md",
                      f"# Prior prediction (thesis Table 3.2), frames {context + 1}-{steps} after {context} context frames\n\n"
                      + markdown_table(headers, prior) + note)


def _write_figures(target: Path, seqs: torch.Tensor, out: dict, context: int, count: int, run: str,
                   notes: tuple[str, str]) -> None:
    """frames/sampleNN.png and gifs/sampleNN.gif for the first ``count`` test sequences."""
    from predvis.figures.predict import write_sample

    for i in range(min(count, len(seqs))):
        write_sample(target / "frames" / f"sample{i:02d}.png", target / "gifs" / f"sample{i:02d}.gif",
                     seqs[i], out["prior"][i], out["recon"][i], context,
                     f"predict: test sequence {i}, run {run}", notes)


# --------------------------------------------------------------------------- registry

@dataclass
class PredictOptions:
    """What a reproduce cell may set for ``predvis predict RUN`` (0 / -1: the run's own eval settings)."""

    context: int = 0       # 0: the run's eval.context
    limit: int = 0         # 0: every test sequence
    figures: int = -1      # -1: the run's eval.figures


def _run_from_options(run: Path, opts: PredictOptions, root: Path, profile: str) -> Path:
    return Path(predict(run, context=opts.context or None, limit=opts.limit or None,
                        figures=None if opts.figures < 0 else opts.figures))


PROBE = register_probe(ProbeSpec("predict", PredictOptions, _run_from_options,
                                 lambda method: isinstance(method, Rollouts) or has_stepper(method), "predvis predict RUN",
                                 lambda method: PredictOptions(limit=2, figures=1)))
