"""PVM model.precision bf16: several streams multiply W1 in bfloat16 with float32 weights and
momentum; its stated tolerance against the float32 path, exactness with one stream, and the
bfloat16 copy of W1 following every change of W1."""
import pytest
import torch

from predvis.backends.pvm.method import PVMModelConfig
from predvis.backends.pvm.model import PVM, PVMSchedule
from predvis.errors import ConfigError
from pvm_side_by_side import step_pair

# the tolerance docs/pvm.md states (measured over 3 seeds: predictions 3.6e-4, layer errors 1.8e-4,
# weights 7.6e-4 and momentum 5.4e-3 of their largest value)
PRED_ATOL, ERR_ATOL, WEIGHT_RTOL, MOMENTUM_RTOL = 2e-3, 1e-3, 5e-3, 3e-2


def _model(precision: str, seed: int = 5) -> PVM:
    on = PVMSchedule(lr_initial=0.05, lr_final=0.05, layer_delay=0, final_delay=10, lateral_on=0, feedback_on=0)
    return PVM([4, 3, 2, 1], channels=3, patch=2, hidden=4, schedule=on, seed=seed, precision=precision)


def _largest_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_stays_within_its_tolerance_of_fp32_across_stream_counts(seed):
    """3 streams, then 1 (the ring form: both paths convert), then 3 again, every layer learning:
    predictions, layer errors, W1, W2 and the W1 momentum within the stated tolerance."""
    frames = torch.rand(30, 3, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    ref, low = _model("fp32"), _model("bf16")
    for part, streams in ((frames[:12], 3), (frames[12:18, :1], 1), (frames[18:], 3)):
        s_ref, s_low = step_pair(ref, low, part, streams, PRED_ATOL, ERR_ATOL)
        x = s_low.caches[-1][0][0]  # layer 0's unit inputs: bfloat16 exactly when several streams
        assert x.dtype == (torch.bfloat16 if streams > 1 else torch.float32)
    for l in range(ref.n_layers):
        for w_ref, w_low in zip(ref.layer_weights(l), low.layer_weights(l)):
            assert w_low.dtype == torch.float32 and _largest_rel(w_ref, w_low) < WEIGHT_RTOL
        m = ref.momentum_w1(l)
        assert m.abs().max() > 0 and _largest_rel(m, low.momentum_w1(l)) < MOMENTUM_RTOL


def test_bf16_with_one_stream_is_the_fp32_path_bit_for_bit():
    frames = torch.rand(30, 1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    ref, low = _model("fp32"), _model("bf16")
    s_ref, s_low = ref.init_state(1), low.init_state(1)
    for f in frames:
        o_ref, o_low = ref.step(f, s_ref), low.step(f, s_low)
        s_ref, s_low = o_ref.state, o_low.state
        torch.testing.assert_close(o_low.prediction, o_ref.prediction, rtol=0, atol=0)
    for l in range(ref.n_layers):
        torch.testing.assert_close(low.layer_weights(l)[0], ref.layer_weights(l)[0], rtol=0, atol=0)


def test_bf16_copy_of_w1_follows_a_load():
    """A model that already holds a bfloat16 copy of its own W1 loads another's weights (in place):
    its next steps equal those of a fresh model loaded the same way, bit for bit."""
    frames = torch.rand(8, 2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    a, b = _model("bf16", seed=5), _model("bf16", seed=6)
    s_a, s_b = a.init_state(2), b.init_state(2)
    for f in frames[:4]:
        s_a, s_b = a.step(f, s_a).state, b.step(f, s_b).state
    b.load_state_dict(a.state_dict())
    fresh = _model("bf16", seed=7)
    fresh.load_state_dict(a.state_dict())
    s_fresh = s_a.clone()
    s_b = s_a.clone()
    for f in frames[4:]:
        o_b, o_fresh = b.step(f, s_b), fresh.step(f, s_fresh)
        s_b, s_fresh = o_b.state, o_fresh.state
        torch.testing.assert_close(o_b.prediction, o_fresh.prediction, rtol=0, atol=0)


def test_precision_is_checked():
    with pytest.raises(ConfigError, match="model.precision"):
        PVMModelConfig(precision="fp16").validate()
    with pytest.raises(ConfigError, match="model.precision"):
        PVM([2, 1], channels=1, patch=2, hidden=4, precision="half")
    assert PVMModelConfig().precision == "fp32" and PVMModelConfig(precision="bf16").build(0).precision == "bf16"
