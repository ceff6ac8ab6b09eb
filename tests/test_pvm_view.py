"""The PVM's differentiable feed-forward view (deepdream on a PVM)."""
from __future__ import annotations

import torch

from predvis.backends.pvm.model import PVM
from predvis.backends.pvm.view import PVMFeedforward


def _pvm() -> PVM:
    return PVM([4, 2, 1], channels=3, patch=4, hidden=9, seed=0)


def test_view_matches_stepping_and_changes_nothing():
    pvm = _pvm()
    before = {k: v.clone() for k, v in pvm.state_dict().items()}
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    view = PVMFeedforward(pvm, settle=4)
    pred = view(x)
    # the same prediction as stepping the frozen model 4 times on the static frame
    pvm.set_learning(False)
    state = pvm.init_state(2)
    for _ in range(4):
        out = pvm.step(x, state)
        state = out.state
    assert torch.allclose(pred, out.prediction)
    pvm.set_learning(True)
    assert pvm.learning  # restored
    assert all(torch.equal(before[k], v) for k, v in pvm.state_dict().items())


def test_gradient_reaches_the_image_from_the_top_layer():
    """The top layer (2 steps above the pixels) only sees the image after settling; gradients
    flow back through those steps into the pixels."""
    pvm = _pvm()
    pvm.set_learning(False)
    view = PVMFeedforward(pvm)
    assert view.settle == 4
    acts = {}
    view.state2.register_forward_hook(lambda m, a, o: acts.__setitem__("top", o))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    view(x)
    assert acts["top"].shape == (1, 9, 1, 1)
    acts["top"].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # with one step the image has not reached the top: no gradient
    x.grad = None
    one = PVMFeedforward(pvm, settle=1)
    one.state2.register_forward_hook(lambda m, a, o: acts.__setitem__("top1", o))
    one(x)
    (g,) = torch.autograd.grad(acts["top1"].square().mean(), x, allow_unused=True)
    assert g is None or g.abs().sum() == 0
