"""Benchmark: overhead of the dreaming loop over the model's own forward + backward.

For each input size (64, 128, 224 px) one full dream (``octaves`` x ``steps`` iterations with
jitter, input normalisation, gradient normalisation, clipping, an L-inf projection and the
octave resizing with detail re-injection) is timed against the bare work it has to do: for
every octave size, ``steps`` forward passes up to the deepest hooked layer plus the backward
pass to the pixels. Both are timed in the same process, alternated, ``repeats`` times;
minimum and median are reported, and ``overhead = loop / bare - 1`` uses the minima.

Models: the default digit classifier (random weights, layer conv3) and, when torchvision is
installed, GoogLeNet with random weights cut at inception4c. Run with one thread
(``torch.set_num_threads(1)``) so timings are stable on a shared CPU.

    python -m predvis.bench_deepdream            # prints a markdown table
"""
from __future__ import annotations

import math
import statistics
import time

import torch

from predvis.probes.deepdream import objectives as O
from predvis.probes.deepdream import transforms as T
from predvis.probes.deepdream.attacks import LinfBall
from predvis.probes.deepdream.engine import Dreamer, Recipe
from predvis.data.images import resize


def _bare(dreamer: Dreamer, objective: O.Objective, image: torch.Tensor, recipe: Recipe) -> None:
    """The model's own work for one dream: forward to the hooked layer + backward, at every octave size."""
    sizes = T.octave_sizes(tuple(image.shape[2:]), recipe.octaves, recipe.octave_scale, recipe.min_octave_side)
    inputs = [resize(image, s) for s in sizes]
    for x in inputs:
        for _ in range(recipe.steps):
            xs = x.detach().requires_grad_(True)
            value = objective(dreamer.tap.run(dreamer._input(xs), objective.layers))
            torch.autograd.grad(value, xs)


def _loop(dreamer: Dreamer, objective: O.Objective, image: torch.Tensor, recipe: Recipe, seed: int) -> None:
    dreamer.dream(image, objective, recipe, torch.Generator().manual_seed(seed), project=LinfBall(image, 0.5))


def _models() -> list[tuple[str, torch.nn.Module, str, int, tuple | None, tuple | None]]:
    from predvis.backends.classifier.model import DigitClassifier

    torch.manual_seed(0)
    out = [("digit classifier", DigitClassifier(), "conv3", 1, None, None)]
    try:
        import torchvision.models as tvm
    except ImportError:
        return out
    net = tvm.googlenet(weights=None, aux_logits=False, init_weights=False)  # PyTorch's default init
    out.append(("GoogLeNet (random)", net, "inception4c", 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_deepdream(sizes: tuple[int, ...] = (64, 128, 224), repeats: int = 5, steps: int = 10, octaves: int = 4,
                    threads: int = 1, device: torch.device | str = "cpu", min_seconds: float = 0.15) -> list[dict]:
    """Time the loop against the bare forward + backward; returns one row per (model, size)."""
    device = torch.device(device)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for name, model, layer, channels, mean, std in _models():
            dreamer = Dreamer(model.to(device), [layer], mean, std)
            objective = O.layer(layer)
            for size in sizes:
                recipe = Recipe(octaves=octaves, steps=steps, jitter=32, blur=0.0)
                image = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(size)).to(device)
                _bare(dreamer, objective, image, recipe)          # warm-up
                _sync(device)
                t0 = time.perf_counter()
                _loop(dreamer, objective, image, recipe, 0)
                _sync(device)
                # several dreams per timing so that each lasts >= min_seconds (short timings are noisy)
                number = max(1, math.ceil(min_seconds / (time.perf_counter() - t0)))
                bare, loop = [], []
                for r in range(repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    for _ in range(number):
                        _bare(dreamer, objective, image, recipe)
                    _sync(device)
                    t1 = time.perf_counter()
                    for k in range(number):
                        _loop(dreamer, objective, image, recipe, r * number + k)
                    _sync(device)
                    t2 = time.perf_counter()
                    bare.append(t1 - t0)
                    loop.append(t2 - t1)
                n = number * recipe.steps * len(T.octave_sizes((size, size), octaves, recipe.octave_scale,
                                                               recipe.min_octave_side))
                rows.append({
                    "model": name, "size": size, "steps": n // number,
                    "bare_ms_min": 1e3 * min(bare) / n, "bare_ms_median": 1e3 * statistics.median(bare) / n,
                    "loop_ms_min": 1e3 * min(loop) / n, "loop_ms_median": 1e3 * statistics.median(loop) / n,
                    "overhead": min(loop) / min(bare) - 1.0,
                })
            dreamer.close()
    finally:
        torch.set_num_threads(before)
    return rows


def markdown(rows: list[dict]) -> str:
    from predvis.tables import markdown_table

    head = ["model", "size px", "steps", "bare ms/step min", "median", "loop ms/step min", "median", "overhead"]
    body = [[r["model"], r["size"], r["steps"], r["bare_ms_min"], r["bare_ms_median"], r["loop_ms_min"],
             r["loop_ms_median"], f"{100 * r['overhead']:+.1f}%"] for r in rows]
    return markdown_table(head, body)


def run(size: str = "quick", device: torch.device | str = "cpu") -> str:
    """The ``make bench`` section: a markdown heading, how it was measured, and the table."""
    repeats = 11 if size == "full" else 7
    rows = bench_deepdream(repeats=repeats, device=device)
    worst = max(r["overhead"] for r in rows)
    return (
        "## deepdream loop overhead\n\n"
        f"One dream = 4 octaves x 10 steps (jitter 32, L-inf projection, octave resizing with detail) against "
        f"the model's own forward (stopped at the hooked layer) + backward to the pixels at the same octave "
        f"sizes, alternated {repeats} times in one process on {device} with 1 CPU thread; ms per step, min and "
        f"median; overhead from the minima (target < 15%; worst here {100 * worst:+.1f}%).\n\n"
        + markdown(rows)
    )
