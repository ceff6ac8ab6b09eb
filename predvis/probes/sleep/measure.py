"""What sleep measures before and after: dreams from fixed starts, where they settle, their energies and
the held-out one-step prediction error; and the frames the dreams start from."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from predvis.probes import attractors as A
from predvis.probes.common import device_of, real_frames, rollout
from predvis.probes.dream import Settling
from predvis.probes.sleep.settings import SleepSettings
from predvis.runtime.unlearning import attractor_clip, settling_energy



@dataclass
class Evaluation:
    """Dreams from the evaluation starts and the held-out prediction error, for one model state.

    dreams: (B, N, C, H, W); settled: per dream; attractors / owners: the attractor of each settled
    dream and its dream index; labels: cluster per attractor; div: (N,) diversity per step;
    err_abs / err_sq: (S,) held-out one-step error per sequence (mean abs / mean squared)."""

    dreams: torch.Tensor
    settled: list[Settling | None]
    attractors: list[torch.Tensor]
    owners: list[int]
    labels: list[int]
    div: torch.Tensor
    err_abs: torch.Tensor
    err_sq: torch.Tensor
    energy: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # at these attractors


@torch.no_grad()
def heldout_error(stepper, seqs: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per held-out sequence (N, T, C, H, W): mean over steps t >= 1, pixels and channels of
    |prediction made at t-1 - frame t| and of its square (teacher forcing, learning off)."""
    dev = device_of(stepper)
    ab, sq = [], []
    for s in range(0, seqs.shape[0], batch):
        x = seqs[s:s + batch].to(dev)
        pred, ea, es = None, [], []
        for t, frame, o in rollout(stepper, real_frames(x), x.shape[1], x.shape[0]):
            if pred is not None:
                d = (pred.float() - frame.float()).flatten(1)
                ea.append(d.abs().mean(1).cpu())
                es.append(d.square().mean(1).cpu())
            pred = o.prediction.clamp(0, 1)
        ab.append(torch.stack(ea, 1).double().mean(1))
        sq.append(torch.stack(es, 1).double().mean(1))
    return torch.cat(ab), torch.cat(sq)


def energies(stepper, attractors: list[torch.Tensor], burn_in: int) -> torch.Tensor:
    """Settling energy (learning off) of each attractor (p, C, H, W) -> (K,)."""
    dev = device_of(stepper)
    out = []
    with torch.no_grad():
        for a in attractors:
            clip = attractor_clip(a[None].to(dev), burn_in)
            out.append(float(settling_energy(stepper.step, stepper.init_state, clip, burn_in)[0]))
    return torch.tensor(out, dtype=torch.float64)


def evaluate(stepper, starts: A.Starts, seqs: torch.Tensor, steps: int, s: SleepSettings) -> Evaluation:
    stepper.set_learning(False)
    dreams = A.closed_loop(stepper, starts.frames, s.prime, steps)
    settled = A.settle_all(dreams, s.threshold, s.patience)
    owners = [i for i, st in enumerate(settled) if st is not None]
    attractors = [A.attractor_frames(dreams[i], settled[i], s.patience) for i in owners]
    err_abs, err_sq = heldout_error(stepper, seqs)
    ev = Evaluation(dreams, settled, attractors, owners, A.cluster(attractors, s.cluster_mse),
                    A.diversity(dreams), err_abs, err_sq)
    ev.energy = energies(stepper, attractors, s.burn_in)
    return ev




def _frames_of(batch, gen: torch.Generator) -> torch.Tensor | None:
    """Frames (M, C, H, W) from one training batch of any method: one per sequence (random time)
    for (B, T, C, H, W) batches, all of a (B, C, H, W) batch; None if the batch is not frames."""
    x = getattr(batch, "x", batch)
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
    if not isinstance(x, torch.Tensor):
        return None
    x = x.detach().float().cpu()
    if x.dim() == 5:
        t = torch.randint(0, x.shape[1], (x.shape[0],), generator=gen)
        return x[torch.arange(x.shape[0]), t]
    return x if x.dim() == 4 else None


def training_frames(method, n: int, epoch: int, shape, gen: torch.Generator) -> torch.Tensor | None:
    """``n`` real frames spread over the method's training batches of ``epoch`` (None if its batches
    are not frames of the model's shape)."""
    if n == 0:
        return None
    steps = max(1, method.steps_per_epoch())
    got: list[torch.Tensor] = []
    stride = None
    for i, batch in enumerate(method.train_batches(epoch)):
        if stride is not None and i % stride:
            continue
        f = _frames_of(batch, gen)
        if f is None or tuple(f.shape[1:]) != tuple(shape):
            return None
        got.append(f)
        if stride is None:
            stride = max(1, steps // max(1, -(-n // max(1, f.shape[0]))))
        if sum(len(g) for g in got) >= n:
            break
    frames = torch.cat(got)
    pick = torch.randperm(frames.shape[0], generator=gen)[:n] if frames.shape[0] > n else torch.arange(frames.shape[0])
    return frames[pick.sort().values]


def heldout_frames(seqs: torch.Tensor, n: int) -> torch.Tensor:
    """n frames of the held-out sequences: sequence i mod S at time (7 * (i div S)) mod T."""
    S, T = seqs.shape[:2]
    return torch.stack([seqs[i % S, (7 * (i // S)) % T] for i in range(n)]) if n else seqs[:0, 0]
