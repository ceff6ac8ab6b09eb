"""PVM backend: wiring, weight count, lesions that really zero the context, errors."""
import pytest
import torch

from predvis.errors import PredvisError
from predvis.backends.pvm.model import PVM, PVMSchedule, PVMState
from predvis.backends.pvm.wiring import build_wiring, count_weights
from predvis.runtime.stepping import SteppingModel, check_pathways, pathways_disabled


def test_paper_model_weight_count():
    w = build_wiring([16, 8, 4, 3, 2, 1])
    counts = count_weights(w, patch=5, channels=3, hidden=49)
    assert sum(counts) == 20_362_873
    assert counts[0] == 13_196_868
    # an interior layer-0 unit: 13 lateral + 1 parent + 1 top = 15 context tiles
    assert len(w.context[0][2 * 16 + 2]) == 15
    # 2x2 layer: the top unit is a parent and is not added twice
    assert all(len(c) == 4 + 1 for c in w.context[4])


def test_small_model_counts_match_nonzero_weights():
    m = PVM([4, 3, 2, 1], channels=1, patch=2, hidden=4, seed=0)
    nz = sum(int(torch.count_nonzero(m.layer_weights(l)[0])) + m.layer_weights(l)[1].numel() for l in range(4))
    assert nz == sum(m.n_weights)
    assert isinstance(m, SteppingModel) and m.pathways == ("feedback", "lateral")


def _on_now() -> PVMSchedule:
    return PVMSchedule(lr_initial=0.05, lr_final=0.05, layer_delay=0, final_delay=10, lateral_on=0, feedback_on=0)


def _run(model, frames, disabled=()):
    state = model.init_state(1)
    preds = []
    with pathways_disabled(model, set(disabled)):
        for f in frames:
            out = model.step(f[None], state)
            state = out.state
            preds.append(out.prediction)
    return torch.stack(preds), state


def test_lesion_zeroes_context_inputs_and_context_weights_stop_mattering():
    frames = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    m = PVM([4, 2, 1], channels=1, patch=2, hidden=4, schedule=_on_now(), seed=1)
    m.set_learning(False)
    intact, st = _run(m, frames)
    for l in range(3):
        x = st.caches[-1][l][0]
        S = 4 if l == 0 else 16
        assert x[..., 4 * S:-1].abs().sum() > 0  # intact: context present
    before, st = _run(m, frames, disabled=("feedback", "lateral"))
    for l in range(3):
        S = 4 if l == 0 else 16
        assert torch.count_nonzero(st.caches[-1][l][0][..., 4 * S:-1]) == 0
    # scramble every context weight: a lesioned model must not notice
    for l in range(3):
        v1 = getattr(m, f"v1_{l}")  # the stored W1^T (no pending momentum: learning is off)
        S = 4 if l == 0 else 16
        v1[..., 4 * S:-1] += torch.randn_like(v1[..., 4 * S:-1])
    after, _ = _run(m, frames, disabled=("feedback", "lateral"))
    torch.testing.assert_close(after, before)
    intact_after, _ = _run(m, frames)
    assert not torch.allclose(intact_after, intact)  # the scrambled weights are the ones used
    assert m.disabled == set()  # restored


def test_feedback_lesion_keeps_lateral():
    frames = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    m = PVM([4, 2, 1], channels=1, patch=2, hidden=4, schedule=_on_now(), seed=1)
    m.set_learning(False)
    _, st = _run(m, frames, disabled=("feedback",))
    x0 = st.caches[-1][0][0][0, 0]  # layer 0, unit 0 (corner): 6 lateral tiles, 1 parent, 1 top
    ctx = x0[16:-1].reshape(-1, 4)
    assert ctx[:6].abs().sum() > 0 and torch.count_nonzero(ctx[6:]) == 0


def test_frozen_learning_keeps_weights_and_schedule_gates_context():
    m = PVM([4, 2, 1], channels=1, patch=2, hidden=4, seed=1)  # default schedule: context off
    assert m.factors() == (0.0, 0.0)
    m.set_learning(False)
    w = m.layer_weights(0)[0].clone()
    _run(m, torch.rand(4, 1, 8, 8))
    assert torch.equal(w, m.layer_weights(0)[0]) and int(m.steps) == 0


def test_bad_inputs():
    m = PVM([4, 2, 1], channels=1, patch=2, hidden=4)
    with pytest.raises(PredvisError, match="pathway 'top'"):
        check_pathways(m, ["top"])
    with pytest.raises(PredvisError, match="shape"):
        m.step(torch.rand(1, 1, 9, 9), m.init_state(1))
    with pytest.raises(PredvisError, match="smaller"):
        PVM([4, 4], channels=1, patch=2, hidden=4)


def _momentum_model(dtype=torch.float64) -> PVM:
    return PVM([4, 2, 1], channels=1, patch=2, hidden=4, schedule=_on_now(), seed=2, dtype=dtype)


def test_pending_momentum_ring_and_dense_agree_across_batch_sizes():
    """One stream keeps pending momentum as a ring, several as a dense tensor; switching is exact."""
    frames = torch.rand(12, 1, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a, b = _momentum_model(), _momentum_model()
    for part, streams in ((frames[:4], 1), (frames[4:8], 2), (frames[8:], 1)):
        sa, sb = a.init_state(1), b.init_state(streams)
        for f in part:
            pa = a.step(f, sa).prediction
            pb = b.step(f.expand(streams, -1, -1, -1), sb).prediction
            torch.testing.assert_close(pb, pa.expand(streams, -1, -1, -1), rtol=1e-10, atol=1e-12)
    assert b.p1_0.numel() > 0 and int(b.pstamp_0) > 0  # the dense form was used
    for l in range(3):
        torch.testing.assert_close(a.layer_weights(l)[0], b.layer_weights(l)[0], rtol=1e-10, atol=1e-12)
    assert a.ring_terms == 52 and _momentum_model(torch.float32).ring_terms == 23


def test_checkpoint_with_dense_w1_and_momentum_loads_exactly():
    """State dicts of the earlier layout (w1_l (U, n, H), m1_l) load into the v1 + pending form."""
    frames = torch.rand(10, 1, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = _momentum_model()
    st = a.init_state(1)
    for f in frames[:6]:
        st = a.step(f, st).state
    old = {k: v.clone() for k, v in a.state_dict().items()
           if not k.split("_")[0] in ("v1", "ra", "re", "rstamp", "p1", "pstamp", "clock")}
    for l in range(3):
        old[f"w1_{l}"] = a.layer_weights(l)[0].clone()
        old[f"m1_{l}"] = a.momentum_w1(l).clone()
    b = _momentum_model()
    b.load_state_dict(old)
    sb = st.clone()
    for f in frames[6:]:
        pa, pb = a.step(f, st).prediction, b.step(f, sb).prediction
        torch.testing.assert_close(pb, pa, rtol=1e-10, atol=1e-12)


def test_centred_inputs_keep_lesioned_context_exactly_zero():
    m = PVM([4, 2, 1], channels=1, patch=2, hidden=4, schedule=_on_now(), seed=1, center=True)
    m.set_learning(False)
    frames = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _, st = _run(m, frames, disabled=("feedback", "lateral"))
    _, st2 = _run(m, frames)
    for l in range(3):
        S = 4 if l == 0 else 16
        assert torch.count_nonzero(st.caches[-1][l][0][..., 4 * S:-1]) == 0
        assert st2.caches[-1][l][0][..., 4 * S:-1].abs().sum() > 0


def test_separate_target_teaches_the_hidden_part_and_defaults_to_the_frame():
    frames = torch.rand(6, 1, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    a, b, c = _momentum_model(), _momentum_model(), _momentum_model()
    sa, sb, sc = a.init_state(1), b.init_state(1), c.init_state(1)
    shown = frames.clone()
    shown[..., 2:6, 2:6] = 0.5
    for f, s in zip(frames, shown):
        pa = a.step(f, sa).prediction
        pb = b.step(f, sb, target=f).prediction
        oc = c.step(s, sc, target=f)
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert not torch.allclose(a.layer_weights(0)[0], c.layer_weights(0)[0])
    assert set(oc.layer_errors) == {"L0", "L1", "L2"}


def test_speed_benchmark_reports_its_ratios_from_one_run():
    """bench_pvm at a tiny size (structure only, no timing assertion): the ratios are quotients of
    the rates it returns, and the floor streams the same model's weights."""
    from predvis.bench.pvm import bench_pvm

    r = bench_pvm(steps=4, ref_steps=1, threads=1, layers=(4, 2, 1), block=2)
    assert r["floor_steps_per_s"] == max(r["floor_ways"].values()) and r["floor_way"] in r["floor_ways"]
    assert set(r["floor_ways"]) == {"bmm", "einsum", "one matmul, fp32", "one matmul, bf16"}
    assert r["weights"] == sum(PVM([4, 2, 1]).n_weights) and r["threads"] == 1
    assert r["ratio"] == pytest.approx(r["batched_steps_per_s"] / r["reference_steps_per_s"])
    assert r["floor_ratio"] == pytest.approx(r["floor_steps_per_s"] / r["reference_steps_per_s"])
    assert r["floor_efficiency"] == pytest.approx(r["batched_steps_per_s"] / r["floor_steps_per_s"])
    assert all(r[k] > 0 for k in ("batched_steps_per_s", "reference_steps_per_s", "floor_steps_per_s"))
    from predvis.bench.pvm import STEP_PATHS

    per_layer, grouped = (r["paths"][1][k] for k in STEP_PATHS)  # both one-stream paths, side by side
    assert r["batched_steps_per_s"] == grouped and r["group_speedup"][1] == pytest.approx(grouped / per_layer)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_inputs_written_in_place_equal_the_concatenation_exactly(center, batch):
    """fused_inputs on and off: the same predictions, errors and learned weights, bit for bit (layer
    by layer: the upper-layer group needs the inputs in place, and agrees to rounding, test_pvm_group.py)."""
    models = [PVM([4, 2, 1], channels=1, patch=2, hidden=4, schedule=_on_now(), seed=1, center=center,
                  fused_inputs=fused, group_layers=False) for fused in (True, False)]
    frames = torch.rand(6, batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    states = [m.init_state(batch) for m in models]
    for t in range(6):
        outs = [m.step(frames[t], s) for m, s in zip(models, states)]
        states = [o.state for o in outs]
        torch.testing.assert_close(outs[0].prediction, outs[1].prediction, rtol=0, atol=0)
        for key in outs[1].layer_errors:
            torch.testing.assert_close(outs[0].layer_errors[key], outs[1].layer_errors[key], rtol=0, atol=0)
    for (key, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def test_streams_benchmark_runs_both_w1_forms_to_the_same_result():
    """bench_pvm_paths at a tiny size (structure only, no timing assertion)."""

    from predvis.bench.pvm import DEFAULT_PATH, PATHS, bench_pvm_paths

    eager = list(PATHS)[:3]  # the compiled paths: tests/test_pvm_compile.py
    r = bench_pvm_paths(streams=2, steps=2, block=1, threads=1, layers=(4, 2, 1), paths=eager)
    assert r["max_rel_diff"] < 1e-5 and r["streams"] == 2  # the two forms differ by float rounding only
    assert list(r["frames_per_s"]) == eager and all(v > 0 for v in r["frames_per_s"].values())
    assert r["compile_seconds"] == {}
    prev, now, _ = r["frames_per_s"].values()
    assert r["speedup"] == pytest.approx(now / prev)
    assert r["diffs"][DEFAULT_PATH] == (0.0, 0.0) and r["diffs"][next(iter(PATHS))][1] == r["max_rel_diff"]
    assert 0 < r["diffs"][list(PATHS)[2]][1] < 5e-3  # bf16: a real difference, within its tolerance
    assert r["floor_frames_per_s"] == max(r["floor_ways"].values())


def _paper_like(dtype, plain: bool) -> PVM:
    return PVM([4, 3, 2, 1], channels=3, patch=2, hidden=4, schedule=_on_now(), seed=5, dtype=dtype,
               plain_streams=plain)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_plain_streams_equal_the_folded_form(dtype, rtol):
    """Several streams keep W1 and its momentum plain (W += M; the default) or folded (v = W + cM
    with a dense pending P, the earlier form): the same arithmetic up to float reassociation, over
    steps with 3 streams, then 1 (the ring; both forms convert), then 3 again."""
    frames = torch.rand(15, 3, 3, 8, 8, generator=torch.Generator().manual_seed(8), dtype=dtype)
    new, old = _paper_like(dtype, True), _paper_like(dtype, False)
    for part, streams in ((frames[:6], 3), (frames[6:10, :1], 1), (frames[10:], 3)):
        s_new, s_old = new.init_state(streams), old.init_state(streams)
        for f in part:
            o_new, o_old = new.step(f, s_new), old.step(f, s_old)
            s_new, s_old = o_new.state, o_old.state
            torch.testing.assert_close(o_new.prediction, o_old.prediction, rtol=rtol, atol=rtol)
        plain = [bool(getattr(new, f"plain_{l}")) for l in range(4)]
        assert plain == [streams > 1] * 4 and not any(bool(getattr(old, f"plain_{l}")) for l in range(4))
    for l in range(4):
        scale = float(old.layer_weights(l)[0].abs().max())
        torch.testing.assert_close(new.layer_weights(l)[0], old.layer_weights(l)[0], rtol=rtol, atol=rtol * scale)
        torch.testing.assert_close(new.layer_weights(l)[1], old.layer_weights(l)[1], rtol=rtol, atol=rtol * scale)
        m = old.momentum_w1(l)
        assert m.abs().max() > 0  # momentum present: the comparison below is not of zeros
        torch.testing.assert_close(new.momentum_w1(l), m, rtol=rtol, atol=rtol * float(m.abs().max()))


def test_plain_form_survives_checkpoint_clear_momentum_and_unlearning():
    """A model saved in the plain form loads into a fresh one exactly; clear_momentum keeps its
    weights; a sleep (unlearn_step) on 2 streams leaves no momentum behind."""
    frames = torch.rand(5, 2, 1, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    a = _momentum_model()
    st = a.init_state(2)
    for f in frames:
        st = a.step(f, st).state
    assert bool(a.plain_0) and a.momentum_w1(0).abs().max() > 0
    b = _momentum_model()
    b.load_state_dict(a.state_dict())
    sb = st.clone()
    for f in frames[:2]:
        torch.testing.assert_close(b.step(f, sb).prediction, a.step(f, st).prediction, rtol=0, atol=0)
    w = [a.layer_weights(l)[0].clone() for l in range(3)]
    a.clear_momentum()
    for l in range(3):
        torch.testing.assert_close(a.layer_weights(l)[0], w[l], rtol=0, atol=0)
        assert a.momentum_w1(l).abs().max() == 0
    a.unlearn_step(frames.transpose(0, 1), rate=1.0, burn_in=1)
    assert all(a.momentum_w1(l).abs().max() == 0 for l in range(3))
    assert not torch.equal(a.layer_weights(0)[0], w[0])


@pytest.mark.parametrize("two_steps", [False, True])
def test_reused_input_buffers_change_nothing(two_steps):
    """A no_grad step writes its inputs into those of the forward that left the cache: the same
    results, bit for bit, as fresh tensors every step; a cloned state is independent."""
    frames = torch.rand(7, 2, 1, 8, 8, generator=torch.Generator().manual_seed(10))
    kw = dict(channels=1, patch=2, hidden=4, schedule=_on_now(), seed=1, two_steps=two_steps)
    a, b = PVM([4, 2, 1], **kw), PVM([4, 2, 1], **kw)
    sa, sb = a.init_state(2), b.init_state(2)
    reused = 0
    for f in frames:
        spare = [id(t) for t in sa.spare]
        oa = a.step(f, sa)
        sb.spare = []  # b: a fresh input tensor every step
        ob = b.step(f, sb)
        reused += sum(id(c[0]) in spare for c in oa.state.caches[-1])
        torch.testing.assert_close(oa.prediction, ob.prediction, rtol=0, atol=0)
    assert reused == 3 * (len(frames) - 3)  # every layer, from the fourth step on
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(ta, tb, rtol=0, atol=0, msg=key)
    copy = sa.clone()
    before = [t.clone() for t in copy.caches[-1][0]]
    for f in frames[:3]:
        sa = a.step(f, sa).state
    assert all(torch.equal(t, u) for t, u in zip(copy.caches[-1][0], before))


def test_sigmoid_slope_as_one_multiply_add_equals_square_then_half_bit_for_bit():
    """f' = 0.5 r^2 as one multiply-add (0 + (0.5 r) r; 0.5 r is exact) gives the bits of r^2 then
    times 0.5, over 13 decades of s; f written into a view gives the bits of f written fresh."""
    from predvis.backends.pvm.model import rational_sigmoid_and_grad

    s = torch.cat([torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 10 ** k for k in range(-6, 7)])
    r = s.abs().add_(1.0).reciprocal_()
    out = torch.empty(2, s.numel())
    f, fp = rational_sigmoid_and_grad(s, out=out[1])
    assert f.data_ptr() == out[1].data_ptr()
    assert torch.equal(fp, r.square().mul_(0.5)) and torch.equal(f, rational_sigmoid_and_grad(s)[0])
    assert f.min() >= 0 and f.max() <= 1
