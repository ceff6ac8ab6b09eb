"""A deliberately plain per-unit PVM: a Python loop over units, one small matrix each.

Used by tests/test_pvm_reference.py to check the batched model in predvis/backends/pvm/model.py (same
predictions, same weight updates) and by predvis/bench/pvm.py as the speed baseline. It computes
its own wiring with loops over the grid and takes only the initial weights from the batched
model. Single stream (batch 1).
"""
from __future__ import annotations

import torch

from predvis.backends.pvm.model import PVM


def _sig(s):
    return 0.5 + s / (2 * (1 + s.abs()))


def _dsig(s):
    return 0.5 / (1 + s.abs()) ** 2


class ReferencePVM:
    """Per-unit loop over the same model; ``step(frame (C, H, W)) -> prediction (C, H, W)``."""

    def __init__(self, model: PVM):
        self.m = model
        self.sides, self.p, self.C, self.H = model.sides, model.patch, model.channels, model.hidden
        L, n = len(self.sides), self.sides
        self.children = [[]]
        for l in range(1, L):
            kids_l = []
            for i in range(n[l]):
                for j in range(n[l]):
                    if n[l] == 1:
                        r0 = c0 = 0
                    else:
                        r0 = int(round(i * (n[l - 1] - 2) / (n[l] - 1)))
                        c0 = int(round(j * (n[l - 1] - 2) / (n[l] - 1)))
                    kids_l.append([(r0 + a) * n[l - 1] + c0 + b for a in (0, 1) for b in (0, 1)])
            self.children.append(kids_l)
        self.sources = []  # per layer, per unit: [(layer, unit, 'lat'|'fb')]
        rad = 2
        for l in range(L):
            lay = []
            for r in range(n[l]):
                for c in range(n[l]):
                    u = r * n[l] + c
                    src = [(l, (r + dy) * n[l] + c + dx, "lat")
                           for dy in range(-rad, rad + 1) for dx in range(-rad, rad + 1)
                           if abs(dy) + abs(dx) <= rad and 0 <= r + dy < n[l] and 0 <= c + dx < n[l]]
                    parents = []
                    if l + 1 < L:
                        parents = [q for q, ks in enumerate(self.children[l + 1]) if u in ks]
                        src += [(l + 1, q, "fb") for q in parents]
                    if l < L - 1 and not (l == L - 2 and parents):
                        src.append((L - 1, 0, "fb"))
                    lay.append(src)
            self.sources.append(lay)
        self.W1, self.W2, self.M1, self.M2 = [], [], [], []
        for l in range(L):
            w1, w2 = model.layer_weights(l)
            S = self.signal_size(l)
            W1l, W2l = [], []
            for u, src in enumerate(self.sources[l]):
                rows = list(range(4 * S + len(src) * self.H)) + [w1.shape[1] - 1]
                W1l.append(w1[u, rows].clone())
                W2l.append(w2[u].clone())
            self.W1.append(W1l)
            self.W2.append(W2l)
            self.M1.append([torch.zeros_like(w) for w in W1l])
            self.M2.append([torch.zeros_like(w) for w in W2l])
        dt = model.layer_weights(0)[0].dtype
        self.h = [[torch.full((self.H,), 0.5, dtype=dt) for _ in range(k * k)] for k in n]
        self.prev = [None] * L
        self.integ = [None] * L
        self.caches = []  # per forward: per layer, per unit (x, ha, fp1, fp2, y)
        self.steps = 0
        self.learning = True

    def signal_size(self, l):
        return self.p * self.p * self.C if l == 0 else 4 * self.H

    def step(self, frame: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """frame (C, H, W) -> (prediction (C, H, W), mean |error| per layer or [])."""
        m, L, p = self.m, len(self.sides), self.p
        sch = m.schedule
        sigs = []
        n0 = self.sides[0]
        sigs.append([frame[:, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(-1).to(self.W1[0][0].dtype)
                     for r in range(n0) for c in range(n0)])
        for l in range(1, L):
            sigs.append([torch.cat([self.h[l - 1][k] for k in kids]) for kids in self.children[l]])
        errs, mean_err = [None] * L, []
        if self.caches:
            for l in range(L):
                S = self.signal_size(l)
                errs[l] = [sigs[l][u] - self.caches[-1][l][u][4][:S] for u in range(len(sigs[l]))]
                mean_err.append(float(torch.stack([e.abs().mean() for e in errs[l]]).mean()))
        if self.learning:
            cache = None
            if m.two_steps and len(self.caches) >= 2:
                cache = self.caches[-2]
            elif not m.two_steps and self.caches:
                cache = self.caches[-1]
            if cache is not None:
                for l in range(L):
                    lr = sch.lr(l, self.steps)
                    if lr == 0:
                        continue
                    for u in range(len(sigs[l])):
                        x, ha, fp1, fp2, y = cache[l][u]
                        t = torch.cat([self.prev[l][u], sigs[l][u]]) if m.two_steps else sigs[l][u]
                        d2 = (t - y) * fp2 * (0.5 if m.residual else 1.0)
                        d1 = (self.W2[l][u][: self.H] @ d2) * fp1
                        self.M2[l][u] = m.momentum * self.M2[l][u] + lr * torch.outer(ha, d2)
                        self.W2[l][u] = self.W2[l][u] + self.M2[l][u]
                        self.M1[l][u] = m.momentum * self.M1[l][u] + lr * torch.outer(x, d1)
                        self.W1[l][u] = self.W1[l][u] + self.M1[l][u]
            self.steps += 1
        lat = float(self.steps >= sch.lateral_on and "lateral" not in m.disabled)
        fb = float(self.steps >= sch.feedback_on and "feedback" not in m.disabled)
        new_h, cache = [], []
        new_integ = []
        for l in range(L):
            hl, cl, il = [], [], []
            for u, sig in enumerate(sigs[l]):
                prev = sig if self.prev[l] is None else self.prev[l][u]
                integ = sig if self.integ[l] is None else m.tau * self.integ[l][u] + (1 - m.tau) * sig
                ef = 0.5 * errs[l][u] + 0.5 if errs[l] is not None else torch.full_like(sig, 0.5)
                if m.center:  # inputs shifted by -0.5; a switched-off context slot is still exactly 0
                    ctx = [(lat if kind == "lat" else fb) * (self.h[sl][su] - 0.5) for sl, su, kind in self.sources[l][u]]
                    x = torch.cat([sig - 0.5, 0.5 * (sig - prev), integ - 0.5, ef - 0.5, *ctx,
                                   torch.ones(1, dtype=sig.dtype)])
                else:
                    ctx = [(lat if kind == "lat" else fb) * self.h[sl][su] for sl, su, kind in self.sources[l][u]]
                    x = torch.cat([sig, 0.5 * (sig - prev) + 0.5, integ, ef, *ctx, torch.ones(1, dtype=sig.dtype)])
                s1 = x @ self.W1[l][u]
                h = _sig(s1)
                ha = torch.cat([h, torch.ones(1, dtype=h.dtype)])
                s2 = ha @ self.W2[l][u]
                hl.append(h)
                y = _sig(s2)
                if m.residual:  # prediction = signal + 2 (output - 0.5), for each predicted step
                    y = (torch.cat([sig, sig]) if m.two_steps else sig) + 2 * (y - 0.5)
                cl.append((x, ha, _dsig(s1), _dsig(s2), y))
                il.append(integ)
            new_integ.append(il)
            new_h.append(hl)
            cache.append(cl)
        self.prev = sigs
        self.integ = new_integ
        self.h = new_h
        self.caches = (self.caches + [cache])[-2:]
        S0 = self.signal_size(0)
        pred = torch.zeros(self.C, n0 * p, n0 * p, dtype=self.W1[0][0].dtype)
        for u in range(n0 * n0):
            r, c = divmod(u, n0)
            pred[:, r * p:(r + 1) * p, c * p:(c + 1) * p] = cache[0][u][4][:S0].reshape(self.C, p, p)
        return pred.clamp(0, 1), mean_err
