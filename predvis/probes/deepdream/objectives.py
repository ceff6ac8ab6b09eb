"""What a dream maximises: small composable objectives over layer activations.

An :class:`Objective` maps ``{layer name: activation}`` to a scalar to be *maximised* and
knows which layers it reads (``.layers``). Objectives add, subtract and scale by numbers, in
the manner of Lucent's ``objectives`` module (Olah et al., "Feature Visualization",
Distill 2017). Activations are (B, C, H, W) for convolutional layers or (B, K) for linear
ones; every objective averages over the batch.

Text form (YAML ``objective:`` and ``--objective``), terms joined by ``+``, each optionally
weighted ``W*``:

    conv3            mean squared activation of a layer (the DeepDream objective)
    conv3:5          mean squared activation of channel 5
    conv3:5:3:4      squared activation of unit (channel 5, row 3, column 4); (B, K): conv3:5
    class:7          logit 7 of the model's output (or class:7@fc for another layer)
    guide:conv2      match each position to its best-matching feature of a guide image
    e.g. "conv2 + 0.5*conv3:4"
"""
from __future__ import annotations

from typing import Callable

import torch

from predvis.errors import PredvisError
from predvis.probes.deepdream.layers import OUTPUT

Acts = dict[str, torch.Tensor]


class Objective:
    """A scalar to maximise, computed from the activations of ``layers``."""

    def __init__(self, fn: Callable[[Acts], torch.Tensor], layers: set[str] | frozenset[str], name: str):
        self.fn = fn
        self.layers = frozenset(layers)
        self.name = name

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) + other(a), self.layers | other.layers,
                         f"{self.name} + {other.name}")

    def __sub__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) - other(a), self.layers | other.layers,
                         f"{self.name} - {other.name}")

    def __mul__(self, weight: float) -> "Objective":
        w = float(weight)
        return Objective(lambda a: w * self(a), self.layers, f"{w:g}*{self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def layer(name: str) -> Objective:
    """Mean of a² over the whole layer (``0.5 ||a||²`` up to scale: the DeepDream objective)."""
    return Objective(lambda a: a[name].pow(2).mean(), {name}, name)


def _check_channel(act: torch.Tensor, name: str, c: int) -> None:
    if act.dim() < 2 or not 0 <= c < act.shape[1]:
        size = act.shape[1] if act.dim() >= 2 else 0
        raise PredvisError(f"channel {c} is out of range for layer '{name}' ({size} channels)")


def channel(name: str, c: int) -> Objective:
    """Mean of a² over channel ``c`` of a (B, C, H, W) layer, or of feature ``c`` of a (B, K) one."""
    def fn(a: Acts) -> torch.Tensor:
        act = a[name]
        _check_channel(act, name, c)
        return act[:, c].pow(2).mean()
    return Objective(fn, {name}, f"{name}:{c}")


def unit(name: str, c: int, y: int | None = None, x: int | None = None) -> Objective:
    """a² of one unit: channel ``c`` at row ``y``, column ``x`` (default: the centre)."""
    def fn(a: Acts) -> torch.Tensor:
        act = a[name]
        _check_channel(act, name, c)
        if act.dim() != 4:
            return act[:, c].pow(2).mean()
        h, w = act.shape[2:]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise PredvisError(f"unit ({yy}, {xx}) is outside layer '{name}' ({h}x{w} at this size)")
        return act[:, c, yy, xx].pow(2).mean()
    where = "" if y is None else f":{y}:{x}"
    return Objective(fn, {name}, f"{name}:{c}{where}")


def class_logit(k: int, name: str = OUTPUT) -> Objective:
    """Logit ``k`` of a (B, K) output: dreaming toward a class."""
    def fn(a: Acts) -> torch.Tensor:
        act = a[name]
        if act.dim() != 2:
            raise PredvisError(
                f"class:{k} needs class logits (B, K) but layer '{name}' gives shape {tuple(act.shape)}"
            )
        if not 0 <= k < act.shape[1]:
            raise PredvisError(f"class {k} is out of range (the model has {act.shape[1]} classes)")
        return act[:, k].mean()
    return Objective(fn, {name}, f"class:{k}")


def guide(name: str, guide_features: torch.Tensor) -> Objective:
    """Match each position to its best-matching guide feature (the deepdream notebook's guide).

    guide_features: (C, M) features of the guide image at layer ``name``. With activations
    x (C, N), the objective is mean over positions i of max_j x_i . y_j; its gradient at position
    i is the guide feature y_j* with the largest dot product, as in the notebook.
    """
    feats = guide_features.detach()

    def fn(a: Acts) -> torch.Tensor:
        act = a[name]
        if act.dim() != 4 or act.shape[1] != feats.shape[0]:
            raise PredvisError(f"guide features do not fit layer '{name}' (shape {tuple(act.shape)})")
        x = act.flatten(2)                                  # (B, C, N)
        dots = torch.einsum("bcn,cm->bnm", x, feats.to(x))  # (B, N, M)
        return dots.max(dim=2).values.mean()
    return Objective(fn, {name}, f"guide:{name}")


def _int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PredvisError(f"objective '{spec}': '{text}' is not an integer") from None


def parse(spec: str, guide_features: Callable[[str], torch.Tensor] | None = None) -> Objective:
    """Parse the text form described in the module docstring into an Objective.

    guide_features: called with a layer name to get the guide image's (C, M) features; a
        ``guide:`` term without it is an error.
    """
    terms = [t.strip() for t in spec.split("+")]
    if not spec.strip() or any(not t for t in terms):
        raise PredvisError(f"objective '{spec}' is empty or has an empty term")
    total: Objective | None = None
    for term in terms:
        weight = 1.0
        if "*" in term:
            w_text, term = (s.strip() for s in term.split("*", 1))
            try:
                weight = float(w_text)
            except ValueError:
                raise PredvisError(f"objective '{spec}': weight '{w_text}' is not a number") from None
        parts = term.split(":")
        head = parts[0]
        if head == "class":
            if len(parts) != 2:
                raise PredvisError(f"objective '{term}': write class:K or class:K@layer")
            k_text, _, where = parts[1].partition("@")
            obj = class_logit(_int(k_text, spec), where or OUTPUT)
        elif head == "guide":
            if len(parts) != 2 or not parts[1]:
                raise PredvisError(f"objective '{term}': write guide:LAYER")
            if guide_features is None:
                raise PredvisError(f"objective '{term}' needs a guide image (set guide=PATH)")
            obj = guide(parts[1], guide_features(parts[1]))
        elif len(parts) == 1:
            obj = layer(head)
        elif len(parts) == 2:
            obj = channel(head, _int(parts[1], spec))
        elif len(parts) == 4:
            obj = unit(head, _int(parts[1], spec), _int(parts[2], spec), _int(parts[3], spec))
        else:
            raise PredvisError(f"objective '{term}': write LAYER, LAYER:C or LAYER:C:Y:X")
        obj = obj if weight == 1.0 else obj * weight
        total = obj if total is None else total + obj
    return total
