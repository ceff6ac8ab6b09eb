"""lesion: prediction error per layer with named pathways switched off, on the same frames.

Piekniewski et al. 2016 (arXiv:1607.06854) report that PVM predicts worse without its feedback
and lateral context. Definitions (docs/probes.md): for every held-out sequence and step t >= 1,
``pixels`` = mean over pixels and channels of |prediction made at t-1 - frame t| (computed here
the same way for every model), and each model layer's own error from ``StepOutput.layer_errors``.
A sequence's score is its mean over steps; the table gives mean and std over sequences and the
ratio lesioned / intact of the means. Learning is frozen unless ``freeze=False``, in which case
both conditions start from the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from predvis.errors import PredvisError
from predvis.runtime.stepping import check_pathways, pathways_disabled
from predvis.probes.common import device_of, preserved, real_frames, rollout
from predvis.config import ConfigError
from predvis.probes.registry import ProbeSpec, register_probe

from predvis.progress import bar, console  # the one stderr console: --quiet silences it


@torch.no_grad()
def error_traces(stepper, seqs: torch.Tensor, disabled: set[str] = frozenset(), batch: int = 64,
                 keep: list[torch.Tensor] | None = None, advance=None) -> dict[str, torch.Tensor]:
    """Per-step errors: name -> (N, T - 1) for seqs (N, T, C, H, W) in [0, 1].

    keep: if given, the predictions of sequence 0's frames 1..T-1 (each (C, H, W)) are appended.
    advance: called once per model step of a batch (a progress bar's).
    """
    dev = device_of(stepper)
    out: dict[str, list[torch.Tensor]] = {}
    with pathways_disabled(stepper, set(disabled)):
        for s in range(0, seqs.shape[0], batch):
            x = seqs[s:s + batch].to(dev)
            pred, per = None, {}
            for t, frame, o in rollout(stepper, real_frames(x), x.shape[1], x.shape[0]):
                if pred is not None:
                    if keep is not None and s == 0:
                        keep.append(pred[0].detach().float().cpu())
                    per.setdefault("pixels", []).append((pred - frame).abs().flatten(1).mean(1).cpu())
                    for k, v in o.layer_errors.items():
                        per.setdefault(k, []).append(v.detach().float().cpu())
                pred = o.prediction
                if advance is not None:
                    advance(1)
            for k, v in per.items():
                out.setdefault(k, []).append(torch.stack(v, 1))
    return {k: torch.cat(v) for k, v in out.items()}


@dataclass
class LesionResult:
    disabled: list[str]
    intact: dict[str, torch.Tensor]    # name -> (N, T - 1)
    lesioned: dict[str, torch.Tensor]
    frames: dict[str, torch.Tensor] = field(default_factory=dict)  # 'intact', 'lesioned': (T - 1, C, H, W), sequence 0

    def rows(self) -> list[list]:
        """[layer, intact mean, std, lesioned mean, std, ratio] per error name."""
        rows = []
        for k in self.intact:
            a, b = self.intact[k].double().mean(1), self.lesioned[k].double().mean(1)
            sa = float(a.std()) if a.numel() > 1 else 0.0
            sb = float(b.std()) if b.numel() > 1 else 0.0
            rows.append([k, float(a.mean()), sa, float(b.mean()), sb, float(b.mean() / a.mean().clamp_min(1e-12))])
        return rows


def lesion_compare(stepper, seqs: torch.Tensor, disable: list[str], freeze: bool = True) -> LesionResult:
    """Run ``seqs`` intact and with ``disable`` switched off; same frames, same start weights."""
    check_pathways(stepper, disable)
    if not disable:
        raise PredvisError("--disable: name at least one pathway")
    stepper.set_learning(not freeze)
    kept: dict[str, list[torch.Tensor]] = {"intact": [], "lesioned": []}
    batches = -(-seqs.shape[0] // 64)
    try:
        with bar("lesion: intact, then lesioned", 2 * batches * seqs.shape[1]) as advance:
            with preserved(stepper) if not freeze else _nothing():
                intact = error_traces(stepper, seqs, keep=kept["intact"], advance=advance)
            with preserved(stepper) if not freeze else _nothing():
                lesioned = error_traces(stepper, seqs, set(disable), keep=kept["lesioned"], advance=advance)
    finally:
        stepper.set_learning(False)
    return LesionResult(list(disable), intact, lesioned, {k: torch.stack(v) for k, v in kept.items()})


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def parse_disable(text: str) -> list[str]:
    from predvis.probes.common import check_unique

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PredvisError("--disable: name at least one pathway, e.g. feedback,lateral")
    check_unique("--disable", names)
    return names


def run_lesion(run_path: Path, disable: str, freeze: bool = True, limit: int | None = None) -> Path:
    """Load a run, compare, write tables/lesion.md, metrics/lesion.csv, plots/lesion.png,
    frames/lesion.png and gifs/lesion.gif."""
    from predvis.figures.stepping import write_lesion
    from predvis.probes.common import check_options, open_probe, take
    from predvis.run import atomic_write_json, atomic_write_text, write_csv
    from predvis.tables import markdown_table

    names = parse_disable(disable)
    check_options(limit=limit)
    probe = open_probe(run_path, "lesion")
    check_pathways(probe.stepper, names)
    seqs = take(probe.method.test_sequences(), limit)
    res = lesion_compare(probe.stepper, seqs, names, freeze)
    label = "+".join(names)
    head = ["error (mean abs)", "intact mean", "intact std", f"no {label} mean", f"no {label} std", "ratio lesioned/intact"]
    text = (f"# Lesion: {label} switched off\n\nRun `{run_path}`; {seqs.shape[0]} held-out sequences of "
            f"{seqs.shape[1]} frames; learning {'frozen' if freeze else 'on (both from the same weights)'}. "
            "Per sequence: mean over steps t >= 1 of the per-step error; mean/std over sequences. "
            "`pixels` = mean |prediction - next frame| over pixels and channels; `L<i>` = the model's "
            "own layer-i prediction error (PVM: layer i vs its signal, see docs/probes.md).\n\n"
            + markdown_table(head, res.rows()) + "\n")
    rows = []
    for cond, traces in (("intact", res.intact), ("lesioned", res.lesioned)):
        for k, v in traces.items():
            for t, m in enumerate(v.mean(0).tolist()):
                rows.append({"condition": cond, "error": k, "step": t + 1, "mean": m})
    settings = {"disabled": names, "freeze": freeze, "limit": limit, "sequences": int(seqs.shape[0])}
    with probe.output() as staged:
        out = staged.path
        atomic_write_text(out / "tables" / "lesion.md", text)
        write_csv(out / "metrics" / "lesion.csv", rows)
        _plot(out / "plots" / "lesion.png", res, label)
        write_lesion(out, seqs[0, 1:], res.frames["intact"], res.frames["lesioned"], label,
                     f"lesion: run {run_path.parent.name} {run_path.name}, test sequence 0")
        atomic_write_json(out / "summary.json", probe.summary(settings, {"rows": res.rows()}))
    console.print(text)
    return staged.final


def _plot(path: Path, res: LesionResult, label: str) -> None:
    from predvis.figures.plots import pyplot, save_figure

    plt = pyplot()
    keys = list(res.intact)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for cond, tr, style in (("intact", res.intact, "-"), (f"no {label}", res.lesioned, "--")):
            ax.plot(range(1, tr[k].shape[1] + 1), tr[k].mean(0).numpy(), style, label=cond)
        ax.set_title(k)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("mean abs error")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


# --------------------------------------------------------------------------- registry

@dataclass
class LesionOptions:
    """What a reproduce cell may set for ``predvis lesion RUN --disable ...``."""

    disable: str = ""
    limit: int = 0         # 0: every held-out sequence

    def validate(self) -> None:
        if not self.disable.strip():
            raise ConfigError("lesion probe: 'disable' names the pathways to switch off, e.g. feedback,lateral")


def _run_from_options(run: Path, opts: LesionOptions, root: Path, profile: str) -> Path:
    return Path(run_lesion(run, opts.disable, True, opts.limit or None))


def _has_pathways(method) -> bool:
    stepper = method.stepper()
    return stepper is not None and bool(stepper.pathways)


PROBE = register_probe(ProbeSpec("lesion", LesionOptions, _run_from_options, _has_pathways,
                                 "predvis lesion RUN --disable PATHWAY",
                                 lambda method: LesionOptions(method.stepper().pathways[0], limit=2)))
