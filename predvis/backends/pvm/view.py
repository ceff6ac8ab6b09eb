"""A differentiable feed-forward view of a trained PVM, for deepdream.

A PVM has no ``forward(image)``: it steps through time and learns online. To ask "what does a
unit of this PVM like to see?", :class:`PVMFeedforward` shows it one static image for a number
of steps, from its resting state, with learning off, and exposes what it computed at the last
step as hookable layers:

- ``state0`` ... ``state{L-1}``: the hidden states of layer l minus 0.5 (the resting state, the
  middle of the rational sigmoid's range) as a (B, hidden, n_l, n_l) map (channel k = hidden
  unit k of every unit, position = the unit's place in its layer), so that "activation" means
  departure from rest in either direction;
- ``prediction``: the predicted next frame (B, C, H, W), also the view's output.

Because all layers update synchronously from the previous snapshot, the image reaches layer l
only after l steps; ``settle`` (default: number of layers + 1) steps let it reach the top and
come back down through feedback. Gradients flow through every step (backpropagation through
time over the settling steps) into the image.
"""
from __future__ import annotations

import torch
from torch import nn

from predvis.backends.pvm.model import PVM


class PVMFeedforward(nn.Module):
    """forward(x (B, C, H, W) in [0, 1]) -> predicted next frame (B, C, H, W).

    pvm: a trained PVM; its weights are read, never changed (learning is switched off while
        the view runs and restored after).
    settle: steps the static image is shown (>= 1).
    """

    def __init__(self, pvm: PVM, settle: int | None = None):
        super().__init__()
        self.pvm = pvm
        self.settle = pvm.n_layers + 1 if settle is None else int(settle)
        if self.settle < 1:
            raise ValueError(f"settle: must be >= 1, got {self.settle}")
        for l in range(pvm.n_layers):
            self.add_module(f"state{l}", nn.Identity())
        self.prediction = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pvm = self.pvm
        was_learning = pvm.learning
        pvm.set_learning(False)
        try:
            state = pvm.init_state(x.shape[0])
            out = None
            for _ in range(self.settle):
                out = pvm.differentiable_step(x, state)
                state = out.state
        finally:
            pvm.set_learning(was_learning)
        B = x.shape[0]
        for l, n in enumerate(pvm.sides):
            h = state.h_all[pvm.offsets[l]: pvm.offsets[l] + n * n]  # (U, B, hidden)
            getattr(self, f"state{l}")((h - 0.5).reshape(n, n, B, -1).permute(2, 3, 0, 1))
        return self.prediction(out.prediction)
