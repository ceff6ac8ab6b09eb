"""Helpers shared by the probes (predict, dream, lesion, occlude, depth-invert): option checks made
before anything is loaded, computed or written; opening the trained run (:func:`open_probe`), which
records the checkpoint a probe read; and the stepping-interface helpers of dream, lesion, occlude."""
from __future__ import annotations

import contextlib
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from predvis.errors import PredvisError

# options that count or measure something: None (the default) or > 0
POSITIVE = {"size": "--size", "limit": "--limit", "steps": "--steps", "prime": "--prime", "every": "--every",
            "context": "context", "patience": "--patience"}


def check_options(flags: dict[str, str] | None = None, **options: Any) -> None:
    """One line ``error: ...`` for the first bad probe option, before any work: the counts and sizes of
    :data:`POSITIVE` must be whole numbers > 0 (or None for the default), ``frame`` and ``figures`` >= 0
    (None: the default), list options (tuples / lists) without repeats. ``flags``: how the user
    wrote an option, where not ``--name``."""
    for name, value in options.items():
        flag = (flags or {}).get(name) or POSITIVE.get(name, f"--{name.replace('_', '-')}")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            check_unique(flag, list(value))
        elif name in POSITIVE:
            check_positive(flag, value)
        elif name in ("frame", "figures") and value < 0:
            raise PredvisError(f"{flag}: must be >= 0, got {value}")


def check_unique(flag: str, names: list) -> None:
    seen: set = set()
    for n in names:
        if n in seen:
            raise PredvisError(f"{flag}: '{n}' is given twice")
        seen.add(n)


def take(seqs: torch.Tensor, limit: int | None, what: str = "held-out sequences", flag: str = "--limit"
         ) -> torch.Tensor:
    """The first ``limit`` of ``seqs`` (all for None); more than there are is an error, not a silent cut."""
    if limit is None:
        return seqs
    check_positive(flag, limit)
    if limit > seqs.shape[0]:
        raise PredvisError(f"{flag}: the run has only {seqs.shape[0]} {what}, got {limit}")
    return seqs[:limit]


@dataclass
class Probe:
    """A trained run opened for a probe: its config, method, stepping model (or None) and where the
    weights came from (``checkpoint``: file, epochs, step; ``state``: status.json's state)."""

    run: Path
    kind: str
    cfg: Any
    method: Any
    stepper: Any
    checkpoint: dict
    state: str | None

    def source(self) -> dict:
        """What a summary.json records about the model a probe used."""
        return {"source": str(self.run), "checkpoint": dict(self.checkpoint), "source_state": self.state,
                "source_running": self.state == "running"}

    def output(self):
        """The probe's new ``<run>/<kind>/<stamp>_<id>/`` folder, staged (:class:`predvis.run.StagedDir`)."""
        from predvis.run import RunDir

        return RunDir(self.run).staged_subdir(self.kind)

    def summary(self, settings: dict, results: dict) -> dict:
        """summary.json: ``settings`` (every option the probe used, and :meth:`source`) beside ``results``;
        the settings are also kept at the top level, where compare reads the probe settings of runs that predate ``settings``."""
        every = {**settings, **self.source()}
        return {"run": str(self.run), **settings, **results, "settings": every}


def open_probe(run_path: Path, kind: str, stepping: bool = True) -> Probe:
    """Check that ``<run>/<kind>/`` can be written, then load the run's best (else last) checkpoint.
    A run that is still training gets one warning line naming the checkpoint used. ``stepping``: the
    probe needs a predictive stepping model."""
    from predvis.run import RunDir, check_writable
    from predvis.experiment import load_trained_from

    run_path = Path(run_path)
    if run_path.is_dir():
        check_writable(run_path / kind, f"{kind} output folder")
    cfg, method, info = load_trained_from(run_path)
    state = RunDir(run_path).status().get("state")
    if state == "running":
        print(f"warning: run {run_path} is still training; {kind} uses {info['file']} "
              f"(epoch {info['epochs']}, step {info['step']})", file=sys.stderr)
    stepper = method.stepper()
    if stepping and stepper is None:
        raise PredvisError(f"run {run_path} is not a predictive stepping model ('{cfg.method}'); {kind} needs one")
    recorded = {key: info[key] for key in ("file", "epochs", "step")}   # what summary.json records
    return Probe(run_path, kind, cfg, method, stepper, recorded, state)


def region_mask(frame_shape: tuple[int, int, int], size: int, where: tuple[int, int] | None = None,
                shape: str = "square") -> torch.Tensor:
    """Bool (H, W) mask of a square or disc of side/diameter ``size`` centred at ``where`` = (x, y).

    Raises a one-line PredvisError if the spot is empty or does not lie wholly inside the frame.
    """
    _, H, W = frame_shape
    if size <= 0:
        raise PredvisError(f"--size: must be > 0 pixels, got {size}")
    x, y = where if where is not None else (W // 2, H // 2)
    x0, y0 = x - size // 2, y - size // 2
    if x0 < 0 or y0 < 0 or x0 + size > W or y0 + size > H:
        raise PredvisError(
            f"spot of size {size} at x,y={x},{y} is outside the {W}x{H} frame "
            f"(its corners must lie in 0..{W - 1}, 0..{H - 1})"
        )
    if shape not in ("square", "disc"):
        raise PredvisError(f"--shape: must be square or disc, got '{shape}'")
    mask = torch.zeros(H, W, dtype=torch.bool)
    if shape == "square":
        mask[y0:y0 + size, x0:x0 + size] = True
    else:
        yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        cy, cx = y0 + (size - 1) / 2, x0 + (size - 1) / 2
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size / 2) ** 2
    return mask


def parse_where(text: str | None) -> tuple[int, int] | None:
    """'X,Y' -> (x, y) pixel centre."""
    if text is None:
        return None
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise PredvisError(f"--where: expected X,Y in pixels, got '{text}'") from None
    return x, y


def check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PredvisError(f"{name}: must be a whole number, got {value!r}")
    if value <= 0:
        raise PredvisError(f"{name}: must be > 0, got {value}")


def device_of(stepper) -> torch.device:
    dev = getattr(stepper, "device", None)
    if dev is not None:
        return torch.device(dev)
    if isinstance(stepper, torch.nn.Module):
        for t in list(stepper.parameters()) + list(stepper.buffers()):
            return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved(stepper) -> Iterator[None]:
    """Restore the model's weights and learning switch afterwards (online learning changes them)."""
    saved = copy.deepcopy(stepper.state_dict()) if isinstance(stepper, torch.nn.Module) else None
    try:
        yield
    finally:
        if saved is not None:
            stepper.load_state_dict(saved)


def step_panels(frame: torch.Tensor, prediction: torch.Tensor, previous: torch.Tensor | None,
                internals) -> dict[str, torch.Tensor | None]:
    """What a figure shows of one step of stream 0: 'input', 'prediction', 'error' (|input -
    the prediction made one step before|, None at the first step) and every internal tensor
    (``state/L0``, ``latent``, ...) of stream 0, on the CPU.

    frame, prediction, previous: (C, H, W); internals: name -> (B, ...).
    """
    panels = {"input": frame.detach().cpu(), "prediction": prediction.detach().cpu(),
              "error": None if previous is None else (frame - previous).abs().detach().cpu()}
    for name, t in internals.items():
        panels[name] = t[0].detach().float().cpu()
    return panels


# --------------------------------------------------------------------------- the one rollout

Feed = Callable[[int, "torch.Tensor | None"], torch.Tensor]


def rollout(stepper, feed: Feed, steps: int, batch: int) -> Iterator[tuple[int, torch.Tensor, Any]]:
    """Step ``batch`` fresh streams ``steps`` times: the input at step t is ``feed(t, prediction)``, where
    ``prediction`` (B, C, H, W) is what the model predicted at step t-1 (None at t = 0). Yields
    ``(t, input, StepOutput)`` after each step; the caller measures what it needs. Gradients are the
    caller's business (wrap in ``torch.no_grad()`` to measure)."""
    state, prediction = stepper.init_state(batch), None
    for t in range(steps):
        x = feed(t, prediction)
        out = stepper.step(x, state)
        yield t, x, out
        state, prediction = out.state, out.prediction


def real_frames(x: torch.Tensor) -> Feed:
    """Teacher forcing: the real frame t of x (B, T, C, H, W) at every step."""
    return lambda t, prediction: x[:, t]


def closed_loop_after(x: torch.Tensor, context: int, clamp: bool = False) -> Feed:
    """The real frames before ``context``, then the model's own predictions fed back (clamped to [0, 1]
    if ``clamp``)."""
    def feed(t: int, prediction: torch.Tensor | None) -> torch.Tensor:
        if t < context:
            return x[:, t]
        return prediction.clamp(0, 1) if clamp else prediction
    return feed
