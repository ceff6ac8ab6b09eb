"""Helpers shared by the dream, lesion and occlude probes (stepping interface only)."""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
import torch.nn.functional as F

from predvis.errors import PredvisError


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


def display_image(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One internal tensor of one stream -> (3, H, W) in [0, 1] for a grid.

    (C, h, w) with C in {1, 3} and (h, w) are images; anything else is flattened into a
    near-square tile. Values outside [0, 1] are min-max normalised.
    """
    t = t.detach().float().cpu()
    if t.dim() == 3 and t.shape[0] in (1, 3):
        img = t
    elif t.dim() == 2:
        img = t[None]
    else:
        flat = t.flatten()
        n = flat.numel()
        side = int(n ** 0.5) or 1
        while n % side:
            side -= 1
        img = flat.reshape(1, side, n // side)
    lo, hi = float(img.min()), float(img.max())
    if lo < 0 or hi > 1:
        img = (img - lo) / (hi - lo + 1e-8)
    img = F.interpolate(img[None], size=size, mode="nearest")[0]
    return img.expand(3, -1, -1) if img.shape[0] == 1 else img


def step_grid_rows(frame: torch.Tensor, prediction: torch.Tensor, previous: torch.Tensor | None,
                   internals: dict[str, torch.Tensor]) -> list[list[torch.Tensor]]:
    """PVM-style display of one step of stream 0: rows are input / error / prediction, then one
    row per internals group (``state/...``, ``pred/...``, ...); columns pixels first, then layers.

    frame, prediction, previous: (C, H, W); internals: name -> (B, ...), stream 0 is drawn.
    """
    size = tuple(frame.shape[-2:])
    to3 = lambda x: x.expand(3, -1, -1) if x.shape[0] == 1 else x  # noqa: E731
    err = (frame - previous).abs() if previous is not None else torch.zeros_like(frame)
    rows = [[to3(frame.cpu()), to3(err.cpu()), to3(prediction.cpu())]]
    groups: dict[str, list[torch.Tensor]] = {}
    for name, t in internals.items():
        groups.setdefault(name.split("/")[0], []).append(display_image(t[0], size))
    rows += list(groups.values())
    return rows
