"""The dreaming loop: gradient ascent on an objective, in pixel space.

The recipe is the google/deepdream notebook's (Mordvintsev, Olah & Tyka, 2015):
each step rolls the image by a random jitter, runs the model (its input normalisation
applied inside the graph) up to the deepest layer the objective reads, takes the gradient of
the objective with respect to the pixels, rolls it back, optionally blurs it, and moves the
image by ``step_size * g / mean|g|`` (so the mean pixel change per step is ``step_size``
whatever the model's scale), then clips to [0, 1] and applies an optional projection (an
L-inf ball or a mask, see ``attacks.py``). Octaves run from small to large with the detail
(dreamed - base) carried up to the next level.

Images are (B, C, H, W) float tensors in [0, 1] on the model's device.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from predvis.errors import PredvisError
from predvis.probes.deepdream import transforms as T
from predvis.probes.deepdream.layers import LayerTap
from predvis.probes.deepdream.objectives import Objective, layer as layer_objective
from predvis.data.images import resize

Projection = Callable[[torch.Tensor], torch.Tensor]
ObjectiveAt = Callable[[int], Objective]


@dataclass
class Recipe:
    """The knobs of one dream (defaults follow the notebook, in [0, 1] pixel units).

    octaves: pyramid levels; octave_scale: size ratio between levels; steps: iterations per
    octave; step_size: mean absolute pixel change per step (1.5/255 as in the notebook);
    jitter: max random roll in pixels at each level; blur: sigma (pixels) of a Gaussian blur
    of the gradient, 0 = off; tv: weight of a total-variation penalty, 0 = off; clip: clamp to
    [0, 1] after every step; min_octave_side: smallest side an octave may have.
    """

    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 10
    step_size: float = 1.5 / 255
    jitter: int = 32
    blur: float = 0.0
    tv: float = 0.0
    clip: bool = True
    min_octave_side: int = 16

    def validate(self) -> None:
        checks = [
            (self.octaves >= 1, "octaves must be >= 1"),
            (self.octave_scale > 1.0, "octave_scale must be > 1"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.step_size > 0, "step_size must be > 0"),
            (self.jitter >= 0, "jitter must be >= 0"),
            (self.blur >= 0, "blur must be >= 0"),
            (self.tv >= 0, "tv must be >= 0"),
            (self.min_octave_side >= 1, "min_octave_side must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise PredvisError(f"deepdream recipe: {message}")


class LayerSchedule:
    """Objective for global iteration i: the DeepDream objective of ``layers[(i // every) % n]``.

    This is the layer sweep of the DeepDream videos (perellonieto/DeepTrip): the layer changes
    every ``every`` iterations, through a list or through all layers in order.
    """

    def __init__(self, layers: Sequence[str], every: int):
        if not layers:
            raise PredvisError("the layer schedule is empty")
        if every < 1:
            raise PredvisError(f"layer_every must be >= 1, got {every}")
        self.layer_names = list(layers)
        self.every = every
        self._objectives = {name: layer_objective(name) for name in self.layer_names}

    @property
    def layers(self) -> frozenset[str]:
        return frozenset(self.layer_names)

    def layer_at(self, i: int) -> str:
        return self.layer_names[(i // self.every) % len(self.layer_names)]

    def __call__(self, i: int) -> Objective:
        return self._objectives[self.layer_at(i)]


class Dreamer:
    """Runs the recipe on ``model`` for objectives over any of ``layers``.

    model: an nn.Module taking (B, C, H, W); it is put in eval mode and its parameters stop
        requiring gradients. mean, std: the model's input normalisation (per channel), applied
        inside the graph; None when the model normalises its own input. recurrent: read each
        layer's last call (see LayerTap). fixed_size: the only side the model accepts; smaller
        octaves are upsampled to it inside the graph.
    The counter ``iteration`` runs across calls, so a layer schedule continues across frames.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, recurrent: bool = False,
                 fixed_size: int | None = None):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        tensor = next(iter(model.parameters()), None)
        if tensor is None:  # a model held in buffers (PVM)
            tensor = next((b for b in model.buffers() if b.is_floating_point()), None)
        if tensor is not None:
            self.device, self.dtype = tensor.device, tensor.dtype
        else:
            self.device, self.dtype = torch.device("cpu"), torch.float32
        self.tap = LayerTap(self.model, layers, last_call=recurrent)
        self.fixed_size = fixed_size
        self.mean = self.std = None
        if mean is not None or std is not None:
            if mean is None or std is None or len(mean) != len(std) or min(std) <= 0:
                raise PredvisError("input normalisation needs mean and std of the same length, std > 0")
            self.mean = torch.tensor(list(mean), device=self.device, dtype=self.dtype).view(1, -1, 1, 1)
            self.std = torch.tensor(list(std), device=self.device, dtype=self.dtype).view(1, -1, 1, 1)
        self.iteration = 0

    def close(self) -> None:
        self.tap.close()

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_size and x.dim() == 4 and tuple(x.shape[2:]) != (self.fixed_size, self.fixed_size):
            # a model with one input size: a smaller octave is shown upsampled (inside the graph)
            x = F.interpolate(x, size=(self.fixed_size, self.fixed_size), mode="bilinear", align_corners=False)
        return x if self.mean is None else (x - self.mean) / self.std

    def activations(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Activations of ``names`` for x (B, C, H, W) in [0, 1], without gradients."""
        with torch.no_grad():
            return self.tap.run(self._input(x.to(self.device, self.dtype)), names)

    def features(self, image: torch.Tensor, name: str) -> torch.Tensor:
        """(C, M) features of layer ``name`` for a (1, C, H, W) image: the guide for ``objectives.guide``."""
        act = self.activations(image, [name])[name]
        if act.dim() != 4:
            raise PredvisError(f"guide layer '{name}' must be convolutional, got shape {tuple(act.shape)}")
        return act[0].flatten(1)

    def step(self, x: torch.Tensor, objective: Objective, recipe: Recipe, generator: torch.Generator,
             project: Projection | None = None, offsets: tuple[int, int] | None = None) -> tuple[torch.Tensor, float]:
        """One step of the recipe on x (B, C, H, W); returns (new x, objective value before the step).

        offsets: the jitter (dy, dx) to use; None draws one from ``generator``.
        """
        dy, dx = T.jitter_offsets(recipe.jitter, generator) if offsets is None else offsets
        xs = T.roll(x, dy, dx).requires_grad_(True)
        with contextlib.nullcontext() if torch.is_grad_enabled() else torch.enable_grad():
            acts = self.tap.run(self._input(xs), objective.layers)
            value = objective(acts)
            loss = value - recipe.tv * T.total_variation(xs) if recipe.tv > 0 else value
            (grad,) = torch.autograd.grad(loss, xs)
        if dy or dx:
            grad = torch.roll(grad, shifts=(-dy, -dx), dims=(2, 3))
        if recipe.blur > 0:
            grad = T.gaussian_blur(grad, recipe.blur)
        scale = recipe.step_size / (float(torch.linalg.vector_norm(grad, 1)) / grad.numel() + 1e-12)
        x = torch.add(x.detach(), grad, alpha=scale)
        if recipe.clip:
            x.clamp_(0.0, 1.0)
        if project is not None:
            x = project(x)
        self.iteration += 1
        return x, float(value.detach())

    def dream(self, image: torch.Tensor, objective: Objective | ObjectiveAt, recipe: Recipe,
              generator: torch.Generator, project: Projection | None = None,
              history: list[float] | None = None) -> torch.Tensor:
        """Dream on image (B, C, H, W) in [0, 1]; returns the dreamed image, same shape.

        objective: an Objective, or a function of the global iteration (a LayerSchedule).
        project: applied after every step at the full-size octave only (smaller octaves
            cannot be projected onto a full-size constraint).
        history: if given, the objective value of every step is appended to it.
        """
        recipe.validate()
        base = image.detach().to(self.device, self.dtype)
        if base.dim() != 4:
            raise PredvisError(f"image must be (B, C, H, W), got shape {tuple(base.shape)}")
        sizes = T.octave_sizes(tuple(base.shape[2:]), recipe.octaves, recipe.octave_scale,
                               recipe.min_octave_side)
        detail = torch.zeros_like(resize(base, sizes[0]))
        x = base
        for level, size in enumerate(sizes):
            level_base = resize(base, size)
            detail = resize(detail, size)
            x = (level_base + detail).clamp_(0.0, 1.0) if recipe.clip else level_base + detail
            last = level == len(sizes) - 1
            # all jitters of this octave in one draw (one generator call instead of one per step)
            shifts = (torch.randint(-recipe.jitter, recipe.jitter + 1, (recipe.steps, 2), generator=generator).tolist()
                      if recipe.jitter > 0 else [(0, 0)] * recipe.steps)
            for dy, dx in shifts:
                obj = objective if isinstance(objective, Objective) else objective(self.iteration)
                x, value = self.step(x, obj, recipe, generator, project if last else None, (dy, dx))
                if history is not None:
                    history.append(value)
            detail = x - level_base
        return x


def zoom_video(dreamer: Dreamer, start: torch.Tensor, objective: Objective | ObjectiveAt, recipe: Recipe,
               frames: int, zoom: float, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield ``frames`` dreamed frames (1, C, H, W): dream, emit, zoom into the centre, repeat.

    Each frame is a full dream (octaves x steps iterations) started from the zoomed previous
    frame; a LayerSchedule objective keeps counting iterations across frames.
    """
    if frames < 1:
        raise PredvisError(f"frames must be >= 1, got {frames}")
    x = start
    for _ in range(frames):
        x = dreamer.dream(x, objective, recipe, generator)
        yield x
        x = T.zoom(x, zoom)


def dream_video(dreamer: Dreamer, frames: Iterable[torch.Tensor], objective: Objective | ObjectiveAt,
                recipe: Recipe, generator: torch.Generator, blend: float = 0.15) -> Iterator[torch.Tensor]:
    """Dream a user video frame by frame (each (1, C, H, W)), yielding dreamed frames.

    Each input frame is mixed with the previous *dreamed* frame before dreaming,
    ``x = blend * prev + (1 - blend) * frame``, so the hallucination persists across frames
    (gordicaleksa/pytorch-deepdream uses blend 0.15).
    """
    if not 0.0 <= blend < 1.0:
        raise PredvisError(f"blend must be in [0, 1), got {blend}")
    prev = None
    for frame in frames:
        frame = frame.to(dreamer.device, dreamer.dtype)
        if prev is not None:
            if prev.shape != frame.shape:
                raise PredvisError("all video frames must have the same size")
            frame = blend * prev + (1.0 - blend) * frame
        prev = dreamer.dream(frame, objective, recipe, generator)
        yield prev
