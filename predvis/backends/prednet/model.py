"""PredNet (Lotter, Kreiman & Cox, "Deep Predictive Coding Networks for Video Prediction and
Unsupervised Learning", ICLR 2017, arXiv:1605.08104), written for predvis in PyTorch.

Layer l at time t holds A_l (its target), Ahat_l (the prediction of A_l), E_l (error units) and
R_l (a convolutional LSTM):

- A_0 = the frame; A_{l+1} = MaxPool2(ReLU(conv(E_l)));
- Ahat_l = ReLU(conv(R_l)), clipped at ``pixel_max`` at layer 0;
- E_l = concat(ReLU(A_l - Ahat_l), ReLU(Ahat_l - A_l));
- R_l(t) = ConvLSTM(concat(E_l(t-1), R_l(t-1), Upsample2(R_{l+1}(t)))).

One time step is a top-down pass (R_{L-1} .. R_0, each reading the already updated R_{l+1}(t))
followed by a bottom-up pass (Ahat_l, E_l, A_{l+1}); every state starts at zero. Ahat_0(t) is
computed before frame t is read: it is the network's prediction of frame t.

Pathways that can be switched off (``disabled``): ``topdown`` zeroes Upsample2(R_{l+1}) in R_l's
input, ``recurrent`` zeroes R_l(t-1) in R_l's input (the LSTM's cell memory is kept).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from predvis.runtime.stepping import FeedforwardView

PATHWAYS = ("topdown", "recurrent")


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM: the four gates from one ``kernel`` x ``kernel`` convolution of the input.

    The caller builds the input (PredNet's concat of errors, own previous output and top-down
    state); the cell keeps only its memory c. Shapes: x (B, in_channels, H, W), c (B, hidden, H, W)
    -> (h, c) each (B, hidden, H, W).
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = self.gates(x).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


@dataclass
class PredNetState:
    """Recurrent state between time steps: R_l and the LSTM memories c_l (each (B, r_l, H_l, W_l)) and
    the errors E_l (each (B, 2 stack_l, H_l, W_l)) of the last step, bottom layer first."""

    r: list[torch.Tensor]
    c: list[torch.Tensor]
    e: list[torch.Tensor]


@dataclass
class PredNetStep:
    """What one time step computed: Ahat_l, E_l (bottom first) and the state after it."""

    ahat: list[torch.Tensor]
    e: list[torch.Tensor]
    state: PredNetState


class PredNet(nn.Module):
    """PredNet with ``len(stack)`` layers.

    stack: channels of A_l / Ahat_l (stack[0] = image channels); r_stack: channels of R_l.
    Frames (B, stack[0], H, W) in [0, pixel_max] with H and W divisible by 2 ** (layers - 1).
    ``forward(frames)`` on a clip (B, T, C, H, W) returns predictions (B, T, C, H, W) (Ahat_0(t),
    the prediction of frame t from frames < t) and errors (B, T, layers): the mean of E_l over its
    units at each step (``error_norm`` l1, the paper's), or of E_l squared (l2); the loss weights
    them by layer and by time (:func:`prednet_loss`).
    A still image (B, C, H, W) is shown for ``static_steps`` steps (a clip of copies); deepdream
    uses this to read the layers' last (settled) activations.
    """

    pathways = PATHWAYS
    static_steps = 4

    def __init__(self, stack: list[int], r_stack: list[int] | None = None, a_filter: int = 3,
                 ahat_filter: int = 3, r_filter: int = 3, pixel_max: float = 1.0, error_norm: str = "l1",
                 frame_size: int | None = None):
        super().__init__()
        self.frame_size = frame_size   # the side of the frames it was trained on (deepdream's input size)
        self.error_norm = error_norm
        self.stack = list(stack)
        self.r_stack = list(r_stack) if r_stack else list(stack)
        self.n_layers = len(self.stack)
        self.pixel_max = pixel_max
        self.disabled: set[str] = set()
        n = self.n_layers
        self.cells = nn.ModuleList(
            ConvLSTMCell(2 * self.stack[l] + self.r_stack[l] + (self.r_stack[l + 1] if l + 1 < n else 0),
                         self.r_stack[l], r_filter)
            for l in range(n))
        self.ahat_convs = nn.ModuleList(
            nn.Conv2d(self.r_stack[l], self.stack[l], ahat_filter, padding=ahat_filter // 2) for l in range(n))
        self.a_convs = nn.ModuleList(
            nn.Conv2d(2 * self.stack[l], self.stack[l + 1], a_filter, padding=a_filter // 2) for l in range(n - 1))
        for module in self.modules():  # zero biases (Keras' default, the published code's): all states start at 0
            if isinstance(module, nn.Conv2d):
                nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return self.ahat_convs[0].weight.device

    @property
    def in_channels(self) -> int:
        """Channels of the frames it reads (no convolution reads the frame itself)."""
        return self.stack[0]

    def zero_state(self, batch: int, height: int, width: int) -> PredNetState:
        """All states zero for frames of height x width."""
        dev, dt = self.device, self.ahat_convs[0].weight.dtype
        r, c, e = [], [], []
        for l in range(self.n_layers):
            h, w = height >> l, width >> l
            r.append(torch.zeros(batch, self.r_stack[l], h, w, device=dev, dtype=dt))
            c.append(torch.zeros(batch, self.r_stack[l], h, w, device=dev, dtype=dt))
            e.append(torch.zeros(batch, 2 * self.stack[l], h, w, device=dev, dtype=dt))
        return PredNetState(r, c, e)

    def lstm_input(self, l: int, state: PredNetState, r_above: torch.Tensor | None) -> torch.Tensor:
        """R_l's input concat(E_l(t-1), R_l(t-1), Upsample2(R_{l+1}(t))) with disabled pathways zeroed."""
        r_prev = state.r[l]
        if "recurrent" in self.disabled:
            r_prev = torch.zeros_like(r_prev)
        parts = [state.e[l], r_prev]
        if r_above is not None:
            up = F.interpolate(r_above, scale_factor=2, mode="nearest")
            parts.append(torch.zeros_like(up) if "topdown" in self.disabled else up)
        return torch.cat(parts, dim=1)

    def top_down(self, state: PredNetState) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """R_l(t), c_l(t) for every layer from the previous step's state, top layer first."""
        n = self.n_layers
        r: list[torch.Tensor | None] = [None] * n
        c: list[torch.Tensor | None] = [None] * n
        for l in reversed(range(n)):
            x = self.lstm_input(l, state, r[l + 1] if l + 1 < n else None)
            r[l], c[l] = self.cells[l](x, state.c[l])
        return r, c

    def predict_layer(self, l: int, r: torch.Tensor) -> torch.Tensor:
        """Ahat_l = ReLU(conv(R_l)); at layer 0 also clipped at pixel_max (SatLU)."""
        ahat = F.relu(self.ahat_convs[l](r))
        return ahat.clamp(max=self.pixel_max) if l == 0 else ahat

    def bottom_up(self, frame: torch.Tensor, r: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Ahat_l and E_l for every layer given R_l(t) and the frame (A_0)."""
        ahat, errors = [], []
        a = frame
        for l in range(self.n_layers):
            p = self.predict_layer(l, r[l])
            e = torch.cat([F.relu(a - p), F.relu(p - a)], dim=1)
            ahat.append(p)
            errors.append(e)
            if l + 1 < self.n_layers:
                a = F.max_pool2d(F.relu(self.a_convs[l](e)), 2)
        return ahat, errors

    def time_step(self, frame: torch.Tensor, state: PredNetState) -> PredNetStep:
        """One time step of the paper: top-down update of R, then bottom-up errors for ``frame``."""
        r, c = self.top_down(state)
        ahat, e = self.bottom_up(frame, r)
        return PredNetStep(ahat, e, PredNetState(r, c, e))

    def error_mean(self, e: torch.Tensor) -> torch.Tensor:
        """(B,) mean of the error units E_l (l1) or of their squares (l2) per stream."""
        return (e if self.error_norm == "l1" else e.square()).flatten(1).mean(1)

    def feedforward_view(self) -> FeedforwardView:
        """This PredNet shown a still image for ``static_steps`` steps
        (:class:`predvis.backends.prednet.view.PredNetFeedforward`), for deepdream."""
        from predvis.backends.prednet.view import PredNetFeedforward

        view = PredNetFeedforward(self).eval()
        return FeedforwardView(view, f"R{(self.n_layers - 1) // 2}", self.frame_size, self.in_channels,
                               f"still image shown {view.steps} steps")

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, T, C, H, W) -> predictions (B, T, C, H, W), errors (B, T, layers); a still
        image (B, C, H, W) is the clip of ``static_steps`` copies of it."""
        if frames.dim() == 4:
            frames = frames.unsqueeze(1).expand(-1, self.static_steps, -1, -1, -1)
        b, steps, _, h, w = frames.shape
        state = self.zero_state(b, h, w)
        preds, errs = [], []
        for t in range(steps):
            out = self.time_step(frames[:, t], state)
            state = out.state
            preds.append(out.ahat[0])
            errs.append(torch.stack([self.error_mean(e) for e in out.e], dim=1))
        return torch.stack(preds, 1), torch.stack(errs, 1)


def prednet_loss(errors: torch.Tensor, layer_weights: torch.Tensor, first: int = 1) -> torch.Tensor:
    """Per-clip loss (B,) from errors (B, T, layers): sum over layers and steps of the mean error
    units weighted by layer and by time; steps before ``first`` weigh 0 and the others
    1 / (T - first) (``first`` = 1: the paper's time weights)."""
    steps = errors.shape[1]
    first = min(max(first, 1), steps - 1) if steps > 1 else 0
    w = torch.zeros(steps, device=errors.device, dtype=errors.dtype)
    w[first:] = 1.0 / max(steps - first, 1)
    return (errors * w[None, :, None] * layer_weights.to(errors)[None, None, :]).sum(dim=(1, 2))
