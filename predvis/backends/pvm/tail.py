"""The element-wise parts of a several-stream PVM step as ``torch.compile``'d functions (opt-in,
``train.compile``; docs/pvm.md, "Compiled element-wise tail").

Each eager element-wise operation of the step is one pass over its tensors; at 64 streams the
layer-0 tensors are ~5 MB each and the step is memory-bound, so the passes, not the arithmetic,
cost. Here each group of operations that runs back to back -- the error, the output delta and the
leaky integral of a layer, the rational sigmoid of the states (written with the bias column) and of the outputs, and
precision bf16's W1 update after its gradient product (W1 is 52 MB in layer 0) -- is one function
that inductor fuses into one loop. The products (``bmm``) stay eager.

Values agree with the eager step to float rounding only: inductor may contract a multiply and an
add into one fused multiply-add and sums the mean in its own order. Shapes are static: one
compilation per function and input shape (one per large layer, :data:`MIN_ROWS`), timed in
:attr:`CompiledTail.compile_seconds`.
"""
from __future__ import annotations

import time
import types

import torch


def _errors(sig: torch.Tensor, y: torch.Tensor, fp2: torch.Tensor, half: bool, integ: torch.Tensor, tau: float):
    """(err = sig - y, the output delta err * f'(out) (halved for residual), per-stream mean |err|,
    the new leaky integral tau integ + (1 - tau) sig): one read of the signal for all four."""
    err = sig - y
    d2 = err * fp2
    if half:
        d2 = d2 * 0.5
    return err, d2, err.abs().mean(dim=(0, 2)), tau * integ + (1 - tau) * sig


def _hidden(s: torch.Tensor):
    """s (U, B, H) -> (h_aug (U, B, H + 1): f(s) and a bias column of ones, f'(s))."""
    r = 1.0 / (1.0 + s.abs())
    h = 0.5 + 0.5 * s * r
    return torch.cat([h, torch.ones_like(h[..., :1])], dim=2), 0.5 * r * r


def _output(z: torch.Tensor, base: torch.Tensor | None):
    """z (U, B, out) -> (y = f(z), or base + 2 (f(z) - 0.5) with a residual ``base``; f'(z))."""
    r = 1.0 / (1.0 + z.abs())
    y = 0.5 + 0.5 * z * r
    if base is not None:
        y = (y - 0.5) * 2.0 + base
    return y, 0.5 * r * r


def _lowp_update(g16: torch.Tensor, p: torch.Tensor, v1: torch.Tensor, w16: torch.Tensor, beta: torch.Tensor) -> None:
    """precision bf16's W1 update after its gradient product, in place: M <- beta M + g (g16 read as
    float32), W += M, and W's bfloat16 copy rounded from the new W (four passes eager, one here)."""
    m = g16.float() + beta * p
    w = v1 + m
    p.copy_(m)
    v1.copy_(w)
    w16.copy_(w)


def _fresh(fn):
    """A copy of ``fn`` with its own code object: dynamo keeps its compilations per code object, so
    each (function, shape) gets its own cache instead of sharing one capped at 8 entries."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


_FUNCTIONS = {"errors": _errors, "hidden": _hidden, "output": _output, "lowp_update": _lowp_update}

# a layer runs compiled only with at least this many (unit, stream) rows: below it a compiled call's
# fixed cost (guards, wrappers: ~0.1 ms) exceeds what fusing saves. At 64 streams: the paper model's
# layers 0 (256 units) and 1 (64 units); its upper layers (16, 9, 4, 1 units) stay eager.
MIN_ROWS = 4096


class CompiledTail:
    """The compiled functions and the seconds their compilations took (sum over every shape).
    ``min_rows``: see :data:`MIN_ROWS`."""

    def __init__(self, min_rows: int | None = None):
        self.compile_seconds = 0.0
        self.min_rows = MIN_ROWS if min_rows is None else min_rows
        self._seen: dict = {}  # (name, shapes and constants) -> its compiled function

    def pays(self, units: int, streams: int) -> bool:
        """Whether a layer of ``units`` units with ``streams`` streams runs compiled."""
        return units * streams >= self.min_rows

    def _call(self, name: str, *args):
        key = (name,) + tuple((tuple(a.shape), a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a
                              for a in args)
        fn = self._seen.get(key)
        if fn is not None:
            return fn(*args)
        fn = self._seen[key] = torch.compile(_fresh(_FUNCTIONS[name]), dynamic=False)
        t0 = time.perf_counter()
        out = fn(*args)
        self.compile_seconds += time.perf_counter() - t0
        return out

    def errors(self, sig, y, fp2, half: bool, integ, tau: float):
        return self._call("errors", sig, y, fp2, half, integ, tau)

    def hidden(self, s):
        return self._call("hidden", s)

    def output(self, z, base):
        return self._call("output", z, base)

    def lowp_update(self, g16, p, v1, w16, beta: float) -> None:
        self._call("lowp_update", g16, p, v1, w16, torch.tensor(beta, dtype=p.dtype, device=p.device))
