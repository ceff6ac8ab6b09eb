"""occlude: a grey blind spot (or a grey surround) in the visual field, and how well the model
fills in what it cannot see, intact and with its context pathways switched off.

The PVM blog's filling-in experiment (Piekniewski et al. 2016, arXiv:1607.06854, and the
accompanying posts). Definitions (docs/probes.md): every frame is shown with the *hidden* region
(the spot in ``blindspot`` mode, everything but the spot in ``surround`` mode) set to grey 0.5.
For each sequence and step t >= ``warmup`` the fill-in error is the mean over hidden pixels and
channels of |prediction of frame t+1 - true frame t+1|; the grey baseline is the same with the
prediction replaced by 0.5. A sequence's score is its mean over steps; the table gives mean and std
over sequences, the ratio error / grey (below 1: better than grey) and the fill-in gain
1 - error / grey.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from predvis.errors import PredvisError
from predvis.runtime.stepping import pathways_disabled
from predvis.probes.common import device_of, real_frames, rollout
from typing import Literal
from predvis.probes.registry import ProbeSpec, has_stepper, register_probe

from predvis.progress import bar, console  # the one stderr console: --quiet silences it
GREY = 0.5


def conditions(pathways: tuple[str, ...]) -> dict[str, set[str]]:
    """intact, each pathway alone switched off, and all off (PVM: no-feedback, no-lateral, neither)."""
    conds = {"intact": set()}
    for p in pathways:
        conds[f"no-{p}"] = {p}
    if len(pathways) > 1:
        conds["neither" if len(pathways) == 2 else "none"] = set(pathways)
    return conds


@dataclass
class OccludeResult:
    mode: str
    error: dict[str, torch.Tensor]  # condition -> (N,) mean hidden-region error per sequence
    grey: torch.Tensor               # (N,)
    frames: dict[str, torch.Tensor] = field(default_factory=dict)  # 'true', 'shown', condition -> (T, C, H, W) stream 0

    def rows(self) -> list[list]:
        g = float(self.grey.double().mean())
        rows = []
        for name, e in self.error.items():
            e = e.double()
            m = float(e.mean())
            rows.append([name, m, float(e.std()) if e.numel() > 1 else 0.0, g, m / g, 1 - m / g])
        return rows


@torch.no_grad()
def occlude(stepper, seqs: torch.Tensor, mask: torch.Tensor, mode: str = "blindspot",
            warmup: int = 1, batch: int = 64) -> OccludeResult:
    """seqs (N, T, C, H, W) in [0, 1]; mask bool (H, W) the spot. Learning is switched off."""
    if mode not in ("blindspot", "surround"):
        raise PredvisError(f"--mode: must be blindspot or surround, got '{mode}'")
    if seqs.shape[1] < warmup + 2:
        raise PredvisError(f"sequences of {seqs.shape[1]} frames are too short for warm-up {warmup}")
    stepper.set_learning(False)
    dev = device_of(stepper)
    hidden = (mask if mode == "blindspot" else ~mask).to(dev)
    if not bool(hidden.any()):
        raise PredvisError("the hidden region is empty: the spot covers the whole frame")
    n_hidden = float(hidden.sum()) * seqs.shape[2]
    result = OccludeResult(mode, {}, torch.empty(0))
    greys = []
    conds = conditions(tuple(stepper.pathways))
    total = len(conds) * -(-seqs.shape[0] // batch) * (seqs.shape[1] - 1)
    with bar(f"occlude ({mode}): {len(conds)} conditions", total) as advance:
        for name, off in conds.items():
            _condition(stepper, seqs, hidden, n_hidden, warmup, batch, name, off, result, greys, advance)
    result.grey = torch.cat(greys)
    return result


def _condition(stepper, seqs: torch.Tensor, hidden: torch.Tensor, n_hidden: float, warmup: int, batch: int,
               name: str, off: set[str], result: OccludeResult, greys: list[torch.Tensor], advance) -> None:
    """One condition of :func:`occlude` (``off``: the pathways switched off): its per-sequence fill-in
    error into ``result.error[name]`` and its frames of sequence 0 into ``result.frames``; the intact
    condition also appends the grey baseline to ``greys``. ``advance`` is called once per step."""
    dev = device_of(stepper)
    errs = []
    with pathways_disabled(stepper, off):
        for s in range(0, seqs.shape[0], batch):
            x = seqs[s:s + batch].to(dev)
            shown = torch.where(hidden, torch.full_like(x, GREY), x)
            e, g, keep = 0, 0, []
            for t, _, o in rollout(stepper, real_frames(shown), x.shape[1] - 1, x.shape[0]):
                if s == 0:
                    keep.append(o.prediction[0].cpu())
                if t >= warmup:
                    e = e + ((o.prediction - x[:, t + 1]).abs() * hidden).flatten(1).sum(1) / n_hidden
                    g = g + ((GREY - x[:, t + 1]).abs() * hidden).flatten(1).sum(1) / n_hidden
                advance(1)
            n = x.shape[1] - 1 - warmup
            errs.append((e / n).cpu())
            if name == "intact":
                greys.append((g / n).cpu())
            if s == 0:
                result.frames[name] = torch.stack(keep)
                result.frames.setdefault("true", x[0, 1:].cpu())
                result.frames.setdefault("shown", shown[0, 1:].cpu())
    result.error[name] = torch.cat(errs)


def run_occlude(run_path: Path, mode: str = "blindspot", size: int | None = None,
                where: tuple[int, int] | None = None, shape: str = "square", limit: int | None = None,
                warmup: int = 1) -> Path:
    """Load a run, measure fill-in, write tables/occlude.md, metrics/occlude.csv, frames/occlude.png,
    gifs/occlude.gif and summary.json (every setting used, the checkpoint read)."""
    from predvis.figures.stepping import write_occlude
    from predvis.probes.common import check_options, open_probe, region_mask, take
    from predvis.run import atomic_write_json, atomic_write_text, write_csv
    from predvis.tables import markdown_table

    if mode not in ("blindspot", "surround"):
        raise PredvisError(f"--mode: must be blindspot or surround, got '{mode}'")
    if shape not in ("square", "disc"):
        raise PredvisError(f"--shape: must be square or disc, got '{shape}'")
    check_options(size=size, limit=limit)
    if warmup < 0:
        raise PredvisError(f"warm-up: must be >= 0 steps, got {warmup}")
    probe = open_probe(run_path, "occlude")
    method, stepper = probe.method, probe.stepper
    fs = tuple(stepper.frame_shape)
    size = fs[1] // 2 if size is None else size
    mask = region_mask(fs, size, where, shape)
    seqs = take(method.test_sequences(), limit)
    res = occlude(stepper, seqs, mask, mode, warmup)
    region = "inside the spot" if mode == "blindspot" else "outside the shown centre"
    head = ["condition", "error mean", "error std", "grey baseline", "error / grey", "fill-in gain"]
    text = (f"# Occlude ({mode}): filling in {region}\n\nRun `{run_path}`; spot {int(mask.sum())} px; "
            f"{seqs.shape[0]} held-out sequences of {seqs.shape[1]} frames; learning frozen; steps >= {warmup}. "
            "error = mean |prediction - true next frame| over hidden pixels and channels; grey = the same for a "
            "constant 0.5; gain = 1 - error / grey (0: no better than grey). See docs/probes.md.\n\n"
            + markdown_table(head, res.rows()) + "\n")
    conds = list(res.error)
    hidden = mask if mode == "blindspot" else ~mask
    centre = where if where is not None else (fs[2] // 2, fs[1] // 2)
    settings = {"mode": mode, "size": size, "where": list(centre), "shape": shape, "limit": limit,
                "sequences": int(seqs.shape[0]), "warmup": warmup}
    with probe.output() as staged:
        out = staged.path
        atomic_write_text(out / "tables" / "occlude.md", text)
        write_csv(out / "metrics" / "occlude.csv",
                  [{"condition": c, "sequence": i, "error": v, "grey": float(res.grey[i])}
                   for c, e in res.error.items() for i, v in enumerate(e.tolist())])
        write_occlude(out, res.frames, conds, hidden, f"occlude: run {run_path.parent.name} {run_path.name}", mode)
        atomic_write_json(out / "summary.json", probe.summary(settings, {"columns": ["true", "shown", *conds],
                                                                          "rows": res.rows()}))
    console.print(text)
    return staged.final


# --------------------------------------------------------------------------- registry

@dataclass
class OccludeOptions:
    """What a reproduce cell may set for ``predvis occlude RUN --mode blindspot|surround``."""

    mode: Literal["blindspot", "surround"] = "blindspot"
    size: int = 0          # 0: half the frame
    limit: int = 0         # 0: every held-out sequence


def _run_from_options(run: Path, opts: OccludeOptions, root: Path, profile: str) -> Path:
    return Path(run_occlude(run, opts.mode, opts.size or None, None, "square", opts.limit or None))


PROBE = register_probe(ProbeSpec("occlude", OccludeOptions, _run_from_options, has_stepper, "predvis occlude RUN",
                                 lambda method: OccludeOptions(limit=2)))
