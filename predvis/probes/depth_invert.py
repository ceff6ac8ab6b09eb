"""Depth-inversion evaluation and figures: ``predvis occlude RUN --mode depth-invert``.

For a trained depth_inversion run: per-image loss on a test set at every output step
(``sse`` = sum over the S x S pixels of (sigmoid(output) - target)^2; ``mse`` = sse / pixels), the
output sharpness, and a figure (input, target, output at every step; PNG grid and GIF over steps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from predvis.errors import PredvisError
from predvis.runtime.capabilities import SceneTestSets
from dataclasses import dataclass
from predvis.probes.registry import ProbeSpec, register_probe

from predvis.progress import console  # the one stderr console: --quiet silences it


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Sum of squared horizontal and vertical pixel differences per image: (..., 1, H, W) -> (...)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]) ** 2
    dy = (images[..., 1:, :] - images[..., :-1, :]) ** 2
    return dx.flatten(-3).sum(-1) + dy.flatten(-3).sum(-1)


@torch.no_grad()
def evaluate_scenes(method, scenes, steps: int | None = None, keep: int = 0) -> dict[str, torch.Tensor]:
    """``sse`` (steps, N) per image and step, ``sharp`` (N,) final-step output sharpness / target's,
    ``outputs`` (steps, keep, 1, S, S)."""
    method.model.eval()
    bs = method.cfg.eval.batch_size
    sse, sharp, outs = [], [], None
    for s in range(0, len(scenes.labels), bs):
        x = scenes.input[s:s + bs].to(method.device)
        y = scenes.target[s:s + bs].to(method.device)
        out = torch.sigmoid(method.model(x, steps))
        sse.append(((out - y) ** 2).flatten(-3).sum(-1).cpu())
        sharp.append((sharpness(out[-1]) / sharpness(y).clamp_min(1e-6)).cpu())
        if s == 0 and keep:
            outs = out[:, :keep].cpu()
    return {"sse": torch.cat(sse, 1), "sharp": torch.cat(sharp), "outputs": outs}


def write_figures(out_dir: Path, name: str, scenes, outputs: torch.Tensor, title: str = "depth inversion",
                  trained: int | None = None) -> tuple[Path, Path]:
    """frames/<name>.png: one row per scene, columns input, target, output at steps 1..T;
    gifs/<name>.gif: one frame per step t, columns input, target, output at t. ``trained``: the
    steps the model was trained with (later steps are marked as beyond them)."""
    from predvis.figures.depth_invert import write_depth_invert

    out_dir = Path(out_dir)
    keep = outputs.shape[1]
    png = out_dir / "frames" / f"{name}.png"
    gif = out_dir / "gifs" / f"{name}.gif"
    png.parent.mkdir(parents=True, exist_ok=True)
    gif.parent.mkdir(parents=True, exist_ok=True)
    write_depth_invert(png, gif, scenes.input[:keep], scenes.target[:keep], scenes.labels[:keep], outputs,
                       [title, f"{keep} scenes; {outputs.shape[0]} unrolled steps"], trained)
    return png, gif


def run_depth_invert(run_path: Path, test_set: str = "held_out", limit: int | None = None,
                     steps: int | None = None, figures: int | None = None) -> Path:
    """Load a depth_inversion run, evaluate it on a test set, write tables, metrics and figures
    into a new ``depth_invert`` folder of the run; returns that folder."""
    from predvis.probes.common import check_options, open_probe
    from predvis.run import atomic_write_json, atomic_write_text, write_csv
    from predvis.tables import markdown_table

    check_options(limit=limit, steps=steps, figures=figures)
    probe = open_probe(run_path, "depth_invert", stepping=False)
    method = probe.method
    if not isinstance(method, SceneTestSets):
        raise PredvisError(f"--mode depth-invert needs a run with scene test sets (depth_inversion); {run_path} "
                           f"is a '{method.cfg.method}' run")
    test_set = test_set.replace("-", "_")
    scenes = method.scene_test_set(test_set)
    if limit is not None:
        from predvis.data.occluded_pairs import Scenes

        if limit > len(scenes.labels):
            raise PredvisError(f"--limit: the {test_set} test set has only {len(scenes.labels)} scenes, got {limit}")
        scenes = Scenes(scenes.input[:limit], scenes.target[:limit], scenes.labels[:limit],
                        scenes.offsets[:limit], scenes.index[:limit])
    keep = min(method.cfg.eval.figures if figures is None else figures, len(scenes.labels)) or 1
    res = evaluate_scenes(method, scenes, steps, keep)
    pixels = scenes.target[0].numel()
    rows = []
    for t in range(res["sse"].shape[0]):
        e = res["sse"][t].double()
        rows.append([t + 1, float(e.mean()), float(e.std()) if e.numel() > 1 else 0.0, float(e.mean()) / pixels])
    grey = ((0.5 - scenes.target) ** 2).flatten(1).sum(1).double().mean().item()
    copy = ((scenes.input - scenes.target) ** 2).flatten(1).sum(1).double().mean().item()
    trained = method.cfg.model.steps
    text = (f"# Depth inversion: {method.cfg.model.name} on the {test_set} test set\n\nRun `{run_path}`; "
            f"{len(scenes.labels)} scenes; trained with {trained} steps. sse = sum over {pixels} pixels of "
            "(sigmoid(output) - target)^2 per image, mean/std over images; mse = sse / pixels (docs/metrics.md). "
            f"Baselines: all-grey output sse {grey:.2f}; copying the input sse {copy:.2f}. Final-step output "
            f"sharpness / target's: {float(res['sharp'].mean()):.3f}.\n\n"
            + markdown_table(["step", "sse mean", "sse std", "mse"], rows) + "\n")
    settings = {"test_set": test_set, "limit": limit, "images": len(scenes.labels), "steps": steps,
                "figures": keep}
    with probe.output() as staged:
        out = staged.path
        for sub in ("metrics", "tables"):
            (out / sub).mkdir()
        atomic_write_text(out / "tables" / "depth_invert.md", text)
        write_csv(out / "metrics" / "depth_invert.csv",
                  [{"scene": i, "step": t + 1, "sse": float(v)} for t in range(res["sse"].shape[0])
                   for i, v in enumerate(res["sse"][t].tolist())])
        write_figures(out, f"depth_invert_{test_set}", scenes, res["outputs"],
                      f"depth inversion: {method.cfg.model.name} on the {test_set} test set", trained)
        atomic_write_json(out / "summary.json", probe.summary(settings, {"rows": rows, "grey_sse": grey,
                                                                          "copy_sse": copy}))
    console.print(text)
    return staged.final


def per_image(res: dict) -> dict[str, np.ndarray]:
    return {"sse": res["sse"].numpy(), "sharp": res["sharp"].numpy()}


# --------------------------------------------------------------------------- registry

@dataclass
class DepthInvertOptions:
    """What a reproduce cell may set for ``predvis occlude RUN --mode depth-invert`` (0: the default)."""

    test_set: str = "held_out"
    limit: int = 0
    steps: int = 0


def _run_from_options(run: Path, opts: DepthInvertOptions, root: Path, profile: str) -> Path:
    return Path(run_depth_invert(run, opts.test_set, opts.limit or None, opts.steps or None))


PROBE = register_probe(ProbeSpec("depth_invert", DepthInvertOptions, _run_from_options,
                                 lambda method: isinstance(method, SceneTestSets), "predvis occlude RUN --mode depth-invert",
                                 lambda method: DepthInvertOptions(limit=4), needs="scenes"))
