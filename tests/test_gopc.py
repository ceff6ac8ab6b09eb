import pytest
import torch

from predvis.backends.gopc.model import GopcModel, GopcModelConfig, count_parameters
from predvis.backends.gopc.stepper import GopcStepper
from predvis.runtime.stepping import SteppingModel, pathways_disabled

TINY = dict(image_size=16, z_dim=6, r_dim=4, post_hidden=5, prior_hidden=7, prior_layers=2,
            dec_channels=[4, 3], enc_channels=[3, 4])


def tiny(**kw):
    torch.manual_seed(0)
    return GopcModel(GopcModelConfig(**{**TINY, **kw})).double()


def grads_and_loss(model, x, eps, eps0=None):
    model.zero_grad()
    out = model.run(x, eps=eps, eps0=eps0)
    loss = out.loss(1.0)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()], out.latents.detach()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 4, 1, 16, 16, generator=g, dtype=torch.float64), torch.randn(3, 4, 4, generator=g, dtype=torch.float64)


def test_shapes(batch):
    x, eps = batch
    out = tiny().run(x, eps=eps)
    assert out.recon.shape == x.shape and out.sse.shape == (3, 4) and out.kl.shape == (3, 4)
    assert out.latents.shape == (3, 4, 4) and out.prior_mu.shape == (3, 4, 4)


@pytest.mark.parametrize("fast", ["batched", "jacobian"])
def test_fast_inner_gradient_matches_reference(batch, fast):
    x, eps = batch
    model = tiny(inner="reference")
    ref = grads_and_loss(model, x, eps)
    model.cfg.inner = fast
    got = grads_and_loss(model, x, eps)
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    assert torch.allclose(got[2], ref[2], atol=1e-12)
    for a, b in zip(got[1], ref[1]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


def test_origin_noise_batched_matches_reference(batch):
    x, eps = batch
    eps0 = torch.randn_like(eps)
    model = tiny(inner="reference", origin_noise=True)
    ref = grads_and_loss(model, x, eps, eps0)
    model.cfg.inner = "batched"
    got = grads_and_loss(model, x, eps, eps0)
    for a, b in zip(got[1], ref[1]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


def test_latents_do_not_depend_on_batch_size(batch):
    """The inner loss is a per-sample sum, so a sample's latent is the same in any batch."""
    x, eps = batch
    model = tiny().eval()
    full = model.run(x, sample=False).latents
    alone = model.run(x[:1], sample=False).latents
    assert torch.allclose(full[:1], alone, atol=1e-12)


def test_inner_step_is_gradient_descent_on_the_inner_loss(batch):
    """z_t = -grad at the origin: a small step along z lowers the inner loss of frame 0."""
    x, _ = batch
    model = tiny()
    from predvis.backends.gopc.model import standard_normal
    prior = standard_normal(3, 4, x.device, x.dtype)
    z0 = torch.zeros(3, 6, dtype=torch.float64, requires_grad=True)
    loss = model._origin_loss(x[:, 0], z0, prior, None)
    (g,) = torch.autograd.grad(loss, z0)
    mu, _ = model.infer_frame(x[:, 0], prior)
    assert torch.allclose(mu, model.posterior(-g)[0], atol=1e-12)
    small = model._origin_loss(x[:, 0], -1e-4 * g, prior, None)
    assert small.item() < loss.item()


def test_full_parameter_counts_within_ten_percent_of_thesis():
    assert count_parameters(GopcModel(GopcModelConfig(kind="gopc1"))) == pytest.approx(3_532_610, rel=0.1)
    assert count_parameters(GopcModel(GopcModelConfig(kind="vae1"))) == pytest.approx(3_993_986, rel=0.1)


def test_stepper_interface_and_prior_lesion(batch):
    x, _ = batch
    model = tiny().float()
    stepper = GopcStepper(model)
    assert isinstance(stepper, SteppingModel)
    state = stepper.init_state(3)
    out = stepper.step(x[:, 0].float(), state)
    fresh, _ = model.infer_frame(x[:, 0].float(), state.prior)  # no cached origin Jacobians
    assert torch.allclose(out.internals["latent"], fresh, atol=1e-6)
    out = stepper.step(x[:, 1].float(), out.state)
    assert out.prediction.shape == (3, 1, 16, 16) and out.layer_errors["pixel_mse"].shape == (3,)
    with pathways_disabled(stepper, ["prior"]):
        lesioned = stepper.step(x[:, 2].float(), out.state)
    assert torch.allclose(lesioned.prediction, model.decoder(torch.zeros(3, 4)).detach())
    assert stepper.disabled == set()
