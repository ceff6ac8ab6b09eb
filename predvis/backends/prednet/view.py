"""A differentiable feed-forward view of a trained PredNet, for deepdream.

PredNet has no ``forward(image) -> activations`` that deepdream can hook: it steps through clips. The view
shows one still image for ``static_steps`` steps from the zero state (the way PredNet sees a still frame)
and passes what the last step computed through named identity layers, so deepdream's hooks read the
settled activations:

- ``R0`` ... ``R{L-1}``: the representation units R_l(t) (B, r_stack[l], H / 2**l, W / 2**l);
- ``E0`` ... ``E{L-1}``: the error units E_l(t) = [ReLU(A_l - Ahat_l), ReLU(Ahat_l - A_l)];
- ``prediction``: Ahat_0, the predicted next frame (B, C, H, W), also the view's output.

Gradients flow through every step (backpropagation through time) into the image. Pathways switched off
on the model (``topdown``, ``recurrent``) stay off in the view.
"""
from __future__ import annotations

import torch
from torch import nn

from predvis.backends.prednet.model import PredNet


class PredNetFeedforward(nn.Module):
    """forward(x (B, C, H, W) in [0, 1]) -> predicted next frame (B, C, H, W); H, W divisible by
    2 ** (layers - 1). The model's weights are read, never changed."""

    def __init__(self, prednet: PredNet, steps: int | None = None):
        super().__init__()
        self.prednet = prednet
        self.steps = prednet.static_steps if steps is None else int(steps)
        if self.steps < 1:
            raise ValueError(f"steps: must be >= 1, got {self.steps}")
        for l in range(prednet.n_layers):
            self.add_module(f"R{l}", nn.Identity())
            self.add_module(f"E{l}", nn.Identity())
        self.prediction = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.prednet
        state = net.zero_state(x.shape[0], x.shape[2], x.shape[3])
        out = None
        for _ in range(self.steps):
            out = net.time_step(x, state)
            state = out.state
        for l in range(net.n_layers):
            getattr(self, f"R{l}")(out.state.r[l])
            getattr(self, f"E{l}")(out.e[l])
        return self.prediction(out.ahat[0])
