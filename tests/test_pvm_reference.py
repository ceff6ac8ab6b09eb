"""The batched PVM equals the per-unit reference loop: predictions, errors and weight updates."""
import pytest
import torch

from predvis.backends.pvm.model import PVM, PVMSchedule
from predvis.bench.pvm_reference import ReferencePVM


def _small(two_steps: bool, momentum: float = 0.5, center: bool = False, residual: bool = False) -> PVM:
    sch = PVMSchedule(lr_initial=0.05, lr_final=0.02, layer_delay=2, final_delay=4, lateral_on=3, feedback_on=5)
    return PVM([4, 3, 2, 1], channels=3, patch=2, hidden=4, two_steps=two_steps, momentum=momentum,
               schedule=sch, seed=3, dtype=torch.float64, center=center,
               residual=residual)


# momentum 0.1 keeps 16 steps in the ring (float64): 40 frames wrap it twice (pending steps added to v1)
@pytest.mark.parametrize("two_steps,momentum,n_frames,center,residual", [
    (False, 0.5, 12, False, False), (True, 0.5, 12, False, False), (False, 0.1, 40, False, False),
    (False, 0.0, 6, False, False), (False, 0.5, 12, True, True), (True, 0.5, 12, True, True)])
def test_batched_matches_per_unit_reference(two_steps, momentum, n_frames, center, residual):
    model = _small(two_steps, momentum, center, residual)
    ref = ReferencePVM(model)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(n_frames, 3, 8, 8, generator=g, dtype=torch.float64)
    state = model.init_state(1)
    w_before = model.layer_weights(0)[0].clone()
    for t, f in enumerate(frames):
        out = model.step(f[None], state)
        state = out.state
        pred_ref, err_ref = ref.step(f)
        torch.testing.assert_close(out.prediction[0], pred_ref, rtol=1e-9, atol=1e-10)
        if t > 0:
            got = [float(out.layer_errors[f"L{l}"][0]) for l in range(4)]
            assert got == pytest.approx(err_ref, rel=1e-9)
    assert not torch.equal(model.layer_weights(0)[0], w_before), "weights never changed: the test would be vacuous"
    if momentum == 0.1:
        assert model.ring_terms == 16 and int(model.clock_0) > 2 * 16  # the ring wrapped
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
    torch.testing.assert_close(a.layer_weights(1)[0], b.layer_weights(1)[0])
