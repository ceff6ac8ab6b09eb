"""Recurrent autoencoder: parameter counts, lesions = feed-forward, long unrolls, stepper, bad config."""
import pytest
import torch

from predvis.config import ConfigError
from predvis.backends.depth_inversion.model import RecurrentAE, RecurrentAEConfig, half_params, matched_channels


pytestmark = pytest.mark.usefixtures("one_thread")



def test_parameter_counts_match_the_diae_layers():
    cfg = RecurrentAEConfig(norm="lrn")
    assert half_params("encoder", "B", cfg) == 236_664 and half_params("encoder", "BLT", cfg) == 297_144
    assert half_params("decoder", "B", cfg) == 237_121 and half_params("decoder", "BLT", cfg) == 297_601
    assert half_params("encoder", "BL", cfg) - half_params("encoder", "B", cfg) == 3 * 32 * 32 * 9
    for norm in ("lrn", "group"):
        c = RecurrentAEConfig(norm=norm)
        for v in ("B", "BL", "BT", "BLT"):
            for role in ("encoder", "decoder"):
                built = RecurrentAE(RecurrentAEConfig(encoder=v, decoder=v, norm=norm))
                assert half_params(role, v, c) == sum(p.numel() for p in getattr(built, role).parameters())
    wide = RecurrentAE(RecurrentAEConfig(encoder="B", decoder="B", match="BLT"))
    full = RecurrentAE(RecurrentAEConfig(encoder="BLT", decoder="BLT"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(wide) - count(full)) / count(full) < 0.02 and matched_channels("encoder", "BLT", cfg) > 32


@pytest.mark.parametrize("norm,unroll", [("lrn", "chained"), ("group", "joint"), ("none", "joint")])
def test_lesioning_lateral_and_topdown_gives_the_feed_forward_computation(norm, unroll):
    torch.manual_seed(0)
    blt = RecurrentAE(RecurrentAEConfig(encoder="BLT", decoder="BLT", norm=norm, unroll=unroll, steps=3)).eval()
    ff = RecurrentAE(RecurrentAEConfig(encoder="B", decoder="B", norm=norm, unroll=unroll, steps=3)).eval()
    missing = ff.load_state_dict(blt.state_dict(), strict=False)
    assert not missing.missing_keys
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        intact = blt(x)
        assert not torch.allclose(intact[0], intact[-1])  # recurrence changes the output
        blt.disabled = {"lateral", "topdown"}
        lesioned = blt(x)
        reference = ff(x)
    if unroll == "joint":  # joint: step 0 is the feed-forward pass (chained: the code is already recurrent)
        assert torch.allclose(intact[0], reference[0], atol=1e-6)
    for t in range(3):
        assert torch.allclose(lesioned[t], reference[0], atol=1e-6)
    bl = RecurrentAE(RecurrentAEConfig(encoder="BL", decoder="BL", norm=norm, unroll=unroll, steps=3)).eval()
    bl.disabled = {"lateral"}
    with torch.no_grad():
        out = bl(x)
    assert torch.allclose(out[0], out[-1], atol=1e-6)


@pytest.mark.parametrize("norm", ["lrn", "group"])
def test_unrolling_beyond_training_stays_finite(norm):
    torch.manual_seed(1)
    model = RecurrentAE(RecurrentAEConfig(norm=norm, unroll="joint", steps=4)).eval()
    for p in model.encoder.lateral.parameters():  # a strong lateral gain, the worst case for growth
        p.data.mul_(3.0)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32), steps=40)
    assert torch.isfinite(out).all() and out.abs().max() < 1e6


def test_stepper_reproduces_the_unrolled_model():
    from predvis.backends.depth_inversion.method import DepthInversionStepper

    torch.manual_seed(2)
    for unroll in ("chained", "joint"):
        model = RecurrentAE(RecurrentAEConfig(encoder="BT", decoder="BLT", unroll=unroll, steps=3)).eval()
        x = torch.rand(3, 1, 32, 32)
        with torch.no_grad():
            want = torch.sigmoid(model(x))
        stepper = DepthInversionStepper(model)
        state = stepper.init_state(3)
        assert stepper.pathways == ("lateral", "topdown")
        for t in range(3):
            o = stepper.step(x if t == 0 else torch.zeros_like(x), state)  # later frames are not read
            state = o.state
            assert torch.allclose(o.prediction, want[t], atol=1e-6)


@pytest.mark.parametrize("key,value,text", [("steps", 0, "T < 1"), ("encoder", "BTL", "did you mean"),
                                            ("decoder", "X", "unknown variant"), ("image_size", 30, "multiple of 8")])
def test_bad_model_config(key, value, text):
    with pytest.raises(ConfigError, match=text):
        RecurrentAEConfig(**{key: value}).validate()


@pytest.mark.parametrize("size", [5, 4, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_lrn_equals_local_response_norm_values_and_gradients(size, channels_last):
    from predvis.backends.depth_inversion.lrn import FusedLRN, ShiftedLRN

    torch.manual_seed(0)
    x = torch.randn(3, 7, 5, 5, dtype=torch.float64) * 10
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    ref = torch.nn.LocalResponseNorm(size, 1e-3, 0.5, 1.0)
    g = torch.randn(3, 7, 5, 5, dtype=torch.float64)
    outs = [m(x) for m in (FusedLRN(size), ShiftedLRN(size), ref)]
    grads = [torch.autograd.grad(y, x, g)[0] for y in outs]
    for y, dx in zip(outs[:2], grads[:2]):
        assert torch.allclose(y, outs[2], rtol=0, atol=1e-12)
        assert torch.allclose(dx, grads[2], rtol=0, atol=1e-12)
    half = FusedLRN(size)(x.detach().to(torch.bfloat16))  # bf16 in, bf16 out, float32 inside
    assert half.dtype == torch.bfloat16 and torch.allclose(half.double(), outs[2].detach(), rtol=1e-2, atol=1e-2)


def test_fused_and_shifted_lrn_models_train_alike():
    x, y = torch.rand(8, 1, 32, 32), torch.rand(8, 1, 32, 32)
    losses = {}
    for lrn in ("fused", "shifted"):
        torch.manual_seed(0)
        model = RecurrentAE(RecurrentAEConfig(steps=2, lrn=lrn))
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for _ in range(3):
            loss = ((torch.sigmoid(model(x)[-1]) - y) ** 2).sum((1, 2, 3)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[lrn] = loss.item()
    assert abs(losses["fused"] - losses["shifted"]) <= 1e-4 * losses["shifted"]


def test_training_step_benchmark_compares_losses_with_the_first_row():
    """bench_recurrent_ae at batch 2 (structure only, no timing assertion): every candidate takes the
    same steps; the fused LRN's losses equal the autograd LRN's to float rounding."""
    from predvis.bench.recurrent_ae import BASELINE, CANDIDATES, bench_recurrent_ae

    pick = {k: CANDIDATES[k] for k in (BASELINE, "fp32, fused LRN (model.lrn=fused)")}
    r = bench_recurrent_ae(batch=2, repeats=1, threads=1, candidates=pick)
    assert r["steps"] == 2 and r["loss_rel_diff"][BASELINE] == 0.0
    assert r["loss_rel_diff"]["fp32, fused LRN (model.lrn=fused)"] < 1e-4
    assert r["speedup"][BASELINE] == 1.0 and all(v > 0 for v in r["ms"].values())
