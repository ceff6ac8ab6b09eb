"""dream: close the loop -- after K real frames each prediction becomes the next input.

Piekniewski et al. 2016 (arXiv:1607.06854) and the PVM blog's "recurrent dreams": a predictive
model primed on real frames and then fed its own predictions. With ``spot`` only a region is
dreamt (the prediction replaces the input there) and the rest of the input stays real, which is
filling-in by dreaming.

Metrics (docs/probes.md): ``change[t]`` = mean over pixels and channels of
``|input_t - input_{t-1}|`` for the dreamt part of the loop; the dream *settles* at step s on a
fixed point when change < threshold for ``patience`` consecutive steps from s, or on a cycle of
period p >= 2 when ``mean |input_t - input_{t-p}| < threshold`` for ``patience`` steps from s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from predvis.errors import PredvisError
from predvis.probes.common import check_positive, device_of, rollout, step_panels
from predvis.probes.registry import ProbeSpec, has_stepper, register_probe

from predvis.progress import console  # the one stderr console: --quiet silences it


@dataclass
class Settling:
    kind: str  # 'fixed point' or 'cycle'
    step: int  # first dream step of the repeating stretch (0 = first dreamt input)
    period: int  # 1 for a fixed point


@dataclass
class DreamResult:
    """inputs: (K + N, C, H, W) what the model read (stream 0); predictions likewise (both empty
    unless kept); change: (N,) per dream step; layer_errors: per step, name -> float (kept steps);
    panels: per kept step, what a figure shows (common.step_panels)."""

    inputs: torch.Tensor
    predictions: torch.Tensor
    change: torch.Tensor
    prime: int
    settled: Settling | None
    layer_errors: list[dict[str, float]] = field(default_factory=list)
    panels: list[dict[str, torch.Tensor | None]] = field(default_factory=list)


def detect_settling(frames: torch.Tensor, threshold: float = 1e-3, patience: int = 10,
                    max_period: int = 50) -> Settling | None:
    """First step where ``frames`` (T, ...) stop changing (period 1) or repeat (period p >= 2).

    A period p holds at step t if mean |frames[t] - frames[t-p]| < threshold; it must hold for
    ``patience`` consecutive steps. The smallest period wins at the earliest step.
    """
    T = frames.shape[0]
    flat = frames.reshape(T, -1).float()
    best: Settling | None = None
    for p in range(1, min(max_period, T - patience) + 1):
        ok = ((flat[p:] - flat[:-p]).abs().mean(dim=1) < threshold).int()  # ok[i]: frame i+p ~ frame i
        runs = torch.nn.functional.conv1d(ok[None, None].float(), torch.ones(1, 1, patience))[0, 0]
        hits = torch.nonzero(runs >= patience - 0.5)
        if len(hits):
            start = int(hits[0])
            if best is None or start < best.step:
                best = Settling("fixed point" if p == 1 else "cycle", start, p)
    return best


class SettlingTracker:
    """:func:`detect_settling` one frame at a time, holding only the last ``max_period`` frames: memory
    does not grow with the number of steps. ``settled`` is the answer for the frames seen so far."""

    def __init__(self, threshold: float = 1e-3, patience: int = 10, max_period: int = 50):
        self.threshold, self.patience, self.max_period = threshold, patience, max_period
        self.recent: torch.Tensor | None = None   # (max_period, D) ring of the previous frames
        self.seen = 0
        self.runs = torch.zeros(max_period, dtype=torch.long)  # consecutive steps period p + 1 has held
        self.settled: Settling | None = None

    def add(self, frame: torch.Tensor) -> bool:
        """Feed the next frame; True when this frame revealed an earlier (or first) settling."""
        flat = frame.detach().reshape(-1).float().cpu()
        if self.recent is None:
            self.recent = torch.zeros(self.max_period, flat.numel())
        j, n = self.seen, min(self.seen, self.max_period)
        found = False
        if n:
            back = [(j - p) % self.max_period for p in range(1, n + 1)]  # ring slots of frames j-1 .. j-n
            ok = (self.recent[back] - flat).abs().mean(dim=1) < self.threshold
            self.runs[:n] = torch.where(ok, self.runs[:n] + 1, torch.zeros_like(self.runs[:n]))
            for p in (torch.nonzero(self.runs[:n] == self.patience).flatten() + 1).tolist():
                start = j - p - self.patience + 1  # the earliest frame of the first full stretch
                best = self.settled
                if best is None or (start, p) < (best.step, best.period):
                    self.settled = Settling("fixed point" if p == 1 else "cycle", start, p)
                    found = True
        self.recent[j % self.max_period] = flat
        self.seen += 1
        return found


@torch.no_grad()
def dream(stepper, prime: torch.Tensor, steps: int, spot: torch.Tensor | None = None,
          real: torch.Tensor | None = None, threshold: float = 1e-3, patience: int = 10,
          keep_panels: int = 0, keep_frames: bool = True, on_step=None) -> DreamResult:
    """Prime on ``prime`` (K, C, H, W), then dream ``steps`` steps (one stream).

    spot: optional bool (H, W); dream only inside it, elsewhere read ``real`` (M, C, H, W) frames
    in turn after the priming (the last one held when they run out; default: the last prime frame).
    keep_panels: keep display tensors for the first ``keep_panels`` steps (0: none).
    keep_frames: keep every input, prediction and layer error in the result; False keeps memory flat
    in ``steps`` (settling is detected on the fly, :class:`SettlingTracker`).
    on_step: called after every step as ``on_step(t, x, pred, prev_pred, out, tracker, change)`` (x, pred,
    prev_pred: (C, H, W) of stream 0, prev_pred None at t = 0; out: the StepOutput; change: this
    step's change, None while priming).
    """
    check_positive("--steps", steps)
    check_positive("--prime", prime.shape[0])
    dev = device_of(stepper)
    inputs, preds, errs, panels = [], [], [], []
    change = torch.zeros(steps)
    tracker = SettlingTracker(threshold, patience)
    pred = prev_pred = last = None
    total = prime.shape[0] + steps
    real = prime[-1:] if real is None else real
    mask = spot.to(dev) if spot is not None else None
    from predvis.progress import progress

    def feed(t: int, prediction: torch.Tensor | None) -> torch.Tensor:
        """The priming frames, then the model's own (clamped) prediction; inside a spot only (``mask``), the
        real frames elsewhere."""
        if t < prime.shape[0]:
            return prime[t:t + 1].to(dev)
        x = prediction.clamp(0, 1)
        if mask is not None:
            k = min(t - prime.shape[0], real.shape[0] - 1)
            x = torch.where(mask, x, real[k:k + 1].to(dev))
        return x

    for t, x, out in progress(rollout(stepper, feed, total, 1), "dreaming", total=total):
        if t >= prime.shape[0]:
            change[t - prime.shape[0]] = float((x - last).abs().mean())
            tracker.add(x[0])
        prev_pred, pred, last = pred, out.prediction.clamp(0, 1), x
        if keep_frames:
            inputs.append(x[0].cpu())
            preds.append(pred[0].cpu())
            errs.append({k: float(v[0]) for k, v in out.layer_errors.items()})
        if t < keep_panels:
            panels.append(step_panels(x[0], pred[0], None if prev_pred is None else prev_pred[0],
                                      out.internals))
        if on_step is not None:
            on_step(t, x[0], pred[0], None if prev_pred is None else prev_pred[0], out, tracker,
                    None if t < prime.shape[0] else float(change[t - prime.shape[0]]))
    empty = torch.zeros(0, *prime.shape[1:])
    return DreamResult(torch.stack(inputs) if inputs else empty, torch.stack(preds) if preds else empty, change,
                       prime.shape[0], tracker.settled, errs, panels)


def gif_every(total: int, every: int | None, max_frames: int = 300) -> int:
    """The GIF's step stride: ``every`` if given, else the smallest that keeps it to ``max_frames``."""
    return every if every is not None else max(1, -(-total // max_frames))


def run_dream(run_path: Path, steps: int = 500, prime: int = 10, from_file: Path | None = None,
              frame: int | None = None, spot: bool = False, size: int | None = None,
              where: tuple[int, int] | None = None, threshold: float = 1e-3, patience: int = 10,
              every: int | None = None, max_frames: int = 300) -> Path:
    """Load a run, dream, and write metrics/dream.csv, frames/dream.png, gifs/dream.gif (every
    ``every``-th step; default: at most ``max_frames`` frames), plots/dream_change.png and summary.json.
    Steps are written as they are made: memory does not grow with ``steps``."""
    from predvis.figures.stepping import DreamFigures
    from predvis.probes.common import check_options, open_probe, region_mask
    from predvis.run import atomic_write_json

    check_options(steps=steps, prime=prime, size=size, frame=frame, patience=patience, every=every)
    if size is not None and not spot:
        raise PredvisError("--size: only with --spot (the size of the dreamt spot)")
    if where is not None and not spot:
        raise PredvisError("--where: only with --spot (the centre of the dreamt spot)")
    if from_file is not None and not Path(from_file).exists():
        raise PredvisError(f"--from: {from_file} does not exist")
    probe = open_probe(run_path, "dream")
    method, stepper = probe.method, probe.stepper
    shape = tuple(stepper.frame_shape)
    size = max(1, shape[1] // 3) if spot and size is None else size
    mask = region_mask(shape, size, where) if spot else None
    if from_file is not None:
        from predvis.data.video import load_video

        src = load_video(from_file, shape[1:], channels=shape[0])
    else:
        src = method.test_sequences()[0]
    if frame is not None:
        if not 0 <= frame < src.shape[0]:
            raise PredvisError(f"--frame: must be in 0..{src.shape[0] - 1}, got {frame}")
        primer, real = src[frame:frame + 1].expand(prime, -1, -1, -1), src[frame:frame + 1]
    else:
        if prime > src.shape[0]:
            raise PredvisError(f"--prime: the source has only {src.shape[0]} frames, got {prime} "
                               "(or give --frame to repeat one frame)")
        primer, real = src[:prime], src[prime:]
        if real.shape[0] == 0:
            real = src[-1:]
    stride = gif_every(prime + steps, every, max_frames)
    what = f"dream in a {size} px spot" if spot else "dream"
    centre = (where if where is not None else (shape[2] // 2, shape[1] // 2)) if spot else None
    settings = {"steps": steps, "prime": prime, "frame": frame, "from": None if from_file is None else str(from_file),
                "spot": bool(spot), "size": size, "where": None if centre is None else list(centre),
                "threshold": threshold, "patience": patience, "every": stride}
    stepper.set_learning(False)
    with probe.output() as staged:
        out = staged.path
        figures = DreamFigures(out, prime, steps, stride, f"{what}: run {run_path.parent.name} {run_path.name}",
                               mask, patience=patience)
        (out / "metrics").mkdir()
        try:
            with open(out / "metrics" / "dream.csv", "w", newline="") as handle:
                table = DreamTable(handle, prime)

                def record(t, x, pred, prev, o, tracker, change):
                    table.add(t, change, o.layer_errors)
                    if figures.wants(t):
                        figures.add(t, step_panels(x, pred, prev, o.internals), tracker.settled)

                res = dream(stepper, primer, steps, mask, real, threshold, patience, keep_frames=False,
                            on_step=record)
            figures.finish(res.settled, res.change, threshold)
        except BaseException:
            figures.discard()
            raise
        results = {"settled": None if res.settled is None else vars(res.settled),
                   "final_change": float(res.change[-1])}
        atomic_write_json(out / "summary.json", probe.summary(settings, results))
    if res.settled is None:
        console.print(f"dream: no fixed point or cycle in {steps} steps (last change {results['final_change']:.2e})")
    else:
        s = res.settled
        console.print(f"dream: reached a {s.kind} (period {s.period}) at dream step {s.step}")
    return staged.final


class DreamTable:
    """metrics/dream.csv written row by row: step, change, error_<name> per layer error (dream steps only)."""

    def __init__(self, handle, prime: int):
        self.handle, self.prime, self.names = handle, prime, None

    def add(self, t: int, change: float | None, layer_errors: dict) -> None:
        if change is None:
            return
        if self.names is None:
            self.names = sorted(layer_errors)
            self.handle.write(",".join(["step", "change", *(f"error_{k}" for k in self.names)]) + "\n")
        cells = [str(t - self.prime), f"{change:.8g}",
                 *(f"{float(layer_errors[k][0]):.8g}" if k in layer_errors else "" for k in self.names)]
        self.handle.write(",".join(cells) + "\n")


# --------------------------------------------------------------------------- registry

@dataclass
class DreamOptions:
    """What a reproduce cell may set for ``predvis dream RUN`` (0: the command's default)."""

    steps: int = 0
    prime: int = 0


def _run_from_options(run: Path, opts: DreamOptions, root: Path, profile: str) -> Path:
    kwargs = {k: v for k, v in (("steps", opts.steps), ("prime", opts.prime)) if v}
    return Path(run_dream(run, **kwargs))


PROBE = register_probe(ProbeSpec("dream", DreamOptions, _run_from_options, has_stepper, "predvis dream RUN",
                                 lambda method: DreamOptions(steps=6, prime=2)))
