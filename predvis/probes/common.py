"""Helpers shared by the dream, lesion and occlude probes (stepping interface only)."""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch

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
