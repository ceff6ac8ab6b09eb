"""Geometry of the Predictive Vision Model (PVM): who reads whom.

Piekniewski et al. 2016, "Unsupervised learning from continuous video in a scalable predictive
recurrent network" (arXiv:1607.06854). This module only computes index lists from the layer
sizes; :mod:`predvis.backends.pvm.model` turns them into gather indices and batched weights.

Wiring chosen (documented in docs/pvm.md):

- units of layer ``l`` sit on an ``n_l x n_l`` grid, flat index ``r * n_l + c``;
- layer 0 unit ``(r, c)`` reads the non-overlapping ``p x p`` patch at ``(r p, c p)``;
- an upper unit ``(i, j)`` of layer ``l+1`` reads the 2x2 block of layer-``l`` units at rows
  ``round(i (n_l - 2) / (n_{l+1} - 1)) + {0, 1}`` (same for columns), so 16->8 and 8->4 do not
  overlap, 4->3 and 3->2 overlap, 2->1 covers everything;
- lateral context: the *same-layer* diamond of radius ``r`` (``|dy| + |dx| <= r``, self
  included, clipped at the borders) -- the released code's layer>=1 bug is not reproduced;
- feedback context: every parent (the upper units that read this unit), then the top unit's
  state for every unit of the layers below the top that does not already have it as a parent
  (so the 2x2 layer gets the top unit once, not twice: 20,362,873 weights for the paper model).

Context slots of a unit are ordered: lateral neighbours (row-major), parents (row-major), top.
"""
from __future__ import annotations

from dataclasses import dataclass

from predvis.errors import ConfigError

LATERAL, FEEDBACK = 1, 2  # slot kinds


@dataclass
class Wiring:
    """Index lists for every unit of every layer.

    sides: units per side of each layer.
    children[l][u]: the 4 flat indices in layer l-1 read by unit u of layer l (l >= 1).
    context[l][u]: list of (layer, flat index, kind) context sources, kind LATERAL or FEEDBACK.
    """

    sides: list[int]
    children: list[list[list[int]]]
    context: list[list[list[tuple[int, int, int]]]]


def child_rows(i: int, n_low: int, n_up: int) -> tuple[int, int]:
    """Rows (or columns) of the 2x2 child block read by upper unit ``i``."""
    if n_up == 1:
        return (0, 1)
    start = int(round(i * (n_low - 2) / (n_up - 1)))
    return (start, start + 1)


def check_sides(sides: list[int]) -> None:
    """Raise ConfigError unless every layer is smaller than the one below and >= 1."""
    if not sides:
        raise ConfigError("model.layers: needs at least one layer")
    for l, n in enumerate(sides):
        if n < 1:
            raise ConfigError(f"model.layers[{l}]: must be >= 1, got {n}")
        if l > 0 and not (n < sides[l - 1] and sides[l - 1] >= 2):
            raise ConfigError(
                f"model.layers: layer {l} ({n} per side) must be smaller than layer {l - 1} "
                f"({sides[l - 1]} per side), which must be >= 2"
            )


def build_wiring(sides: list[int], lateral_radius: int = 2, top_to_all: bool = True) -> Wiring:
    """Compute children and context lists for layers of ``sides[l] x sides[l]`` units."""
    check_sides(sides)
    L = len(sides)
    children: list[list[list[int]]] = [[] for _ in range(L)]
    parents: list[list[list[int]]] = [[[] for _ in range(n * n)] for n in sides]
    for l in range(1, L):
        n_low, n_up = sides[l - 1], sides[l]
        for i in range(n_up):
            for j in range(n_up):
                rows, cols = child_rows(i, n_low, n_up), child_rows(j, n_low, n_up)
                kids = [r * n_low + c for r in rows for c in cols]
                children[l].append(kids)
                for k in kids:
                    parents[l - 1][k].append(i * n_up + j)
    context: list[list[list[tuple[int, int, int]]]] = []
    top = L - 1
    for l, n in enumerate(sides):
        layer_ctx = []
        for r in range(n):
            for c in range(n):
                srcs = []
                for dy in range(-lateral_radius, lateral_radius + 1):
                    for dx in range(-lateral_radius, lateral_radius + 1):
                        rr, cc = r + dy, c + dx
                        if abs(dy) + abs(dx) <= lateral_radius and 0 <= rr < n and 0 <= cc < n:
                            srcs.append((l, rr * n + cc, LATERAL))
                ps = sorted(parents[l][r * n + c]) if l < top else []
                srcs += [(l + 1, p, FEEDBACK) for p in ps]
                if top_to_all and l < top and sides[top] == 1 and not (l + 1 == top and ps):
                    srcs.append((top, 0, FEEDBACK))
                layer_ctx.append(srcs)
        context.append(layer_ctx)
    return Wiring(sides=list(sides), children=children, context=context)


def signal_size(layer: int, patch: int, channels: int, hidden: int) -> int:
    """Length of a unit's primary signal: a p*p*C patch in layer 0, 4 child states above."""
    return patch * patch * channels if layer == 0 else 4 * hidden


def count_weights(wiring: Wiring, patch: int, channels: int, hidden: int, two_steps: bool = False) -> list[int]:
    """Predictive-MLP weights per layer (biases included, padding excluded).

    A unit with ``n_in = 4 S + 49 K`` inputs (S signal values, K context tiles) and ``S`` outputs
    (``2 S`` with t+2 prediction) has ``(n_in + 1) hidden + (hidden + 1) out`` weights.
    """
    counts = []
    for l, ctx in enumerate(wiring.context):
        S = signal_size(l, patch, channels, hidden)
        out = 2 * S if two_steps else S
        counts.append(sum((4 * S + hidden * len(c) + 1) * hidden + (hidden + 1) * out for c in ctx))
    return counts
