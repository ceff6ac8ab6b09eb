"""The batched PVM equals the per-unit reference loop: predictions, errors and weight updates."""
import pytest
import torch

from predvis.models.pvm import PVM, PVMSchedule
from pvm_reference import ReferencePVM


def _small(two_steps: bool) -> PVM:
    sch = PVMSchedule(lr_initial=0.05, lr_final=0.02, layer_delay=2, final_delay=4, lateral_on=3, feedback_on=5)
    return PVM([4, 3, 2, 1], channels=3, patch=2, hidden=4, two_steps=two_steps,
               schedule=sch, seed=3, dtype=torch.float64)


@pytest.mark.parametrize("two_steps", [False, True])
def test_batched_matches_per_unit_reference(two_steps):
    model = _small(two_steps)
    ref = ReferencePVM(model)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(12, 3, 8, 8, generator=g, dtype=torch.float64)
    state = model.init_state(1)
    w_before = model.w1_0.clone()
    for t, f in enumerate(frames):
        out = model.step(f[None], state)
        state = out.state
        pred_ref, err_ref = ref.step(f)
        torch.testing.assert_close(out.prediction[0], pred_ref, rtol=1e-9, atol=1e-10)
        if t > 0:
            got = [float(out.layer_errors[f"L{l}"][0]) for l in range(4)]
            assert got == pytest.approx(err_ref, rel=1e-9)
    assert not torch.equal(model.w1_0, w_before), "weights never changed: the test would be vacuous"
    for l in range(4):
        w1, w2 = model.layer_weights(l)
        S = ref.signal_size(l)
        for u, src in enumerate(ref.sources[l]):
            rows = list(range(4 * S + len(src) * 4)) + [w1.shape[1] - 1]
            torch.testing.assert_close(w1[u, rows], ref.W1[l][u], rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(w2[u], ref.W2[l][u], rtol=1e-9, atol=1e-12)
            pad = sorted(set(range(w1.shape[1])) - set(rows))
            assert torch.count_nonzero(w1[u, pad]) == 0  # padded context slots stay exactly zero


def test_batch_of_identical_streams_matches_one_stream():
    a, b = _small(False), _small(False)
    frames = torch.rand(6, 1, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sa, sb = a.init_state(1), b.init_state(3)
    for f in frames:
        pa = a.step(f, sa).prediction
        pb = b.step(f.expand(3, -1, -1, -1), sb).prediction
        torch.testing.assert_close(pb, pa.expand(3, -1, -1, -1))
    torch.testing.assert_close(a.w1_1, b.w1_1)
