"""dream / lesion / occlude computations, on tiny real stepping models (no files written)."""
import pytest
import torch

from predvis.errors import PredvisError
from predvis.backends.pvm.model import PVM, PVMSchedule
from predvis.runtime.stepping import StepOutput
from predvis.probes.common import parse_where, region_mask
from predvis.probes.dream import SettlingTracker, detect_settling, dream
from predvis.probes.lesion import lesion_compare, parse_disable
from predvis.probes.occlude import conditions, occlude


class Shift:
    """Predicts that the frame moves ``shift`` pixels right (0: the input itself)."""

    pathways = ("prior",)
    frame_shape = (1, 4, 4)

    def __init__(self, shift=0):
        self.shift, self.disabled = shift, set()

    def init_state(self, batch):
        return None

    def step(self, frame, state):
        return StepOutput(prediction=torch.roll(frame, self.shift, dims=-1), state=state,
                          internals={"state/L0": frame.mean(1)})

    def set_learning(self, enabled):
        pass


def test_identity_model_dreams_a_constant_frame():
    prime = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    res = dream(Shift(0), prime, steps=20, keep_panels=2)
    assert res.inputs.shape == (23, 1, 4, 4)
    assert torch.equal(res.inputs[3:], prime[-1].expand(20, -1, -1, -1))
    assert res.settled.kind == "fixed point" and res.settled.step == 0
    assert res.change.abs().max() == 0 and len(res.panels) == 2


def test_dream_feeds_the_prediction_back():
    prime = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    res = dream(Shift(1), prime, steps=20)
    for k in range(12):  # the k-th dreamt input is the last real frame shifted k + 1 times
        assert torch.equal(res.inputs[2 + k], torch.roll(prime[-1], k + 1, dims=-1))
    assert res.settled.kind == "cycle" and res.settled.period == 4 and res.settled.step == 0


def test_spot_dream_keeps_real_input_outside():
    prime = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    spot = region_mask((1, 4, 4), 2, (2, 2))
    res = dream(Shift(1), prime, steps=3, spot=spot)
    assert torch.equal(res.inputs[2:, :, ~spot], prime[-1:, :, ~spot].expand(3, -1, -1))
    assert not torch.equal(res.inputs[3, :, spot], prime[-1, :, spot])


def test_detect_settling_on_known_sequences():
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(7, 5, generator=g)
    fixed = torch.cat([noise, noise[-1:].expand(15, -1)])
    assert vars(detect_settling(fixed, patience=5)) == {"kind": "fixed point", "step": 6, "period": 1}
    cyc = torch.cat([noise[:4], torch.rand(3, 5, generator=g).repeat(6, 1)])
    s = detect_settling(cyc, patience=5)
    assert (s.kind, s.step, s.period) == ("cycle", 4, 3)
    assert detect_settling(torch.rand(30, 5, generator=g), patience=5) is None


def tracked(frames, **kw):
    tracker = SettlingTracker(**kw)
    for f in frames:
        tracker.add(f)
    return tracker.settled


@pytest.mark.parametrize("seed", range(6))
def test_settling_tracker_agrees_with_detect_settling(seed):
    """On the fly, holding only max_period frames, it finds what the whole-sequence search finds."""
    g = torch.Generator().manual_seed(seed)
    head = torch.rand(int(torch.randint(0, 20, (1,), generator=g)), 6, generator=g)
    period = int(torch.randint(1, 9, (1,), generator=g))
    cycle = torch.rand(period, 6, generator=g).repeat(12, 1)
    drift = torch.rand(40, 6, generator=g) if seed % 2 else torch.zeros(0, 6)
    seqs = [torch.cat([head, cycle, drift]), torch.rand(50, 6, generator=g), torch.cat([head, cycle])]
    for frames in seqs:
        for kw in ({"patience": 5}, {"patience": 3, "max_period": 4}, {"patience": 10, "threshold": 0.2}):
            want, got = detect_settling(frames, **kw), tracked(frames, **kw)
            assert (None if want is None else vars(want)) == (None if got is None else vars(got))


def test_dream_without_kept_frames_gives_the_same_answer_and_streams_every_step():
    prime = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    full = dream(Shift(1), prime, steps=30)
    seen = []
    lean = dream(Shift(1), prime, steps=30, keep_frames=False,
                 on_step=lambda t, x, pred, prev, out, tracker, change: seen.append((t, x.clone(), change)))
    assert lean.inputs.numel() == 0 and lean.layer_errors == []
    assert vars(lean.settled) == vars(full.settled) and torch.equal(lean.change, full.change)
    assert [t for t, _, _ in seen] == list(range(32))
    assert all(torch.equal(x, full.inputs[t]) for t, x, _ in seen)
    assert [c for _, _, c in seen[2:]] == full.change.tolist() and seen[1][2] is None


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(PredvisError, match="outside"):
        region_mask((3, 16, 16), 8, (14, 8))
    with pytest.raises(PredvisError, match="> 0"):
        region_mask((3, 16, 16), 0)
    with pytest.raises(PredvisError, match="--steps"):
        dream(Shift(0), torch.rand(2, 1, 4, 4), steps=0)
    with pytest.raises(PredvisError, match="pathway 'feedback'"):
        lesion_compare(Shift(0), torch.rand(1, 3, 1, 4, 4), ["feedback"])
    with pytest.raises(PredvisError, match="X,Y"):
        parse_where("3")
    with pytest.raises(PredvisError):
        parse_disable(" , ")
    with pytest.raises(PredvisError, match="mode"):
        occlude(Shift(0), torch.rand(1, 4, 1, 4, 4), region_mask((1, 4, 4), 2), mode="halo")


def test_occlude_identity_model_is_exactly_the_grey_baseline():
    seqs = torch.rand(3, 6, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    res = occlude(Shift(0), seqs, region_mask((1, 4, 4), 2), "blindspot")
    assert set(res.error) == {"intact", "no-prior"}
    torch.testing.assert_close(res.error["intact"], res.grey)
    assert res.rows()[0][-1] == pytest.approx(0.0, abs=1e-6)
    sur = occlude(Shift(0), seqs, region_mask((1, 4, 4), 2), "surround")
    assert not torch.allclose(sur.grey, res.grey)  # a different hidden region
    assert list(conditions(("feedback", "lateral"))) == ["intact", "no-feedback", "no-lateral", "neither"]


def _trained_pvm():
    sch = PVMSchedule(lr_initial=0.05, lr_final=0.05, layer_delay=0, final_delay=10**6, lateral_on=0, feedback_on=0)
    m = PVM([4, 2, 1], channels=1, patch=2, hidden=4, schedule=sch, seed=0)
    st = m.init_state(1)
    for f in torch.rand(30, 1, 1, 8, 8, generator=torch.Generator().manual_seed(5)):
        st = m.step(f, st).state
    return m


def test_lesion_on_pvm_uses_same_frames_and_freezes_learning():
    m = _trained_pvm()
    w = m.layer_weights(0)[0].clone()
    seqs = torch.rand(2, 6, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    res = lesion_compare(m, seqs, ["feedback", "lateral"])
    assert torch.equal(w, m.layer_weights(0)[0]) and m.disabled == set()
    assert set(res.intact) == {"pixels", "L0", "L1", "L2"} and res.intact["pixels"].shape == (2, 5)
    assert not torch.allclose(res.intact["L0"], res.lesioned["L0"])
    again = lesion_compare(m, seqs, ["feedback", "lateral"], freeze=False)
    assert torch.equal(w, m.layer_weights(0)[0])  # online learning during the probe is undone afterwards
    torch.testing.assert_close(again.intact["pixels"][:, 0], res.intact["pixels"][:, 0])
    occ = occlude(m, seqs, region_mask((1, 8, 8), 4), "blindspot")
    assert list(occ.error) == ["intact", "no-feedback", "no-lateral", "neither"]
    assert occ.frames["intact"].shape == (5, 1, 8, 8)
