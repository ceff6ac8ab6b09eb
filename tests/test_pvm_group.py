"""PVM upper-layer group (model.group_layers): layers 1..L-1 run as one batch of units for one
stream. It must compute what the layer-by-layer path computes, up to float32 rounding."""
import pytest
import torch

from predvis.backends.pvm.model import PVM, PVMSchedule
from predvis.runtime.stepping import pathways_disabled

RTOL = 1e-5  # relative to the largest value of each compared tensor (float32 reassociation)

EVERY_LAYER = dict(layer_delay=0, lateral_on=0, feedback_on=0)
# layer l starts at 7 l, drops to the final rate at 20 + 7 l; lateral at 10, feedback at 15
CROSSING = dict(lr_initial=5e-3, lr_final=2e-3, layer_delay=7, final_delay=20, lateral_on=10, feedback_on=15)


def _model(group: bool, layers, hidden, schedule: dict, **kw) -> PVM:
    return PVM(list(layers), hidden=hidden, schedule=PVMSchedule(**schedule), seed=0, group_layers=group, **kw)


def _run(model: PVM, frames: torch.Tensor, disabled=(), state=None):
    """Step ``model`` through frames (T, B, C, H, W); (predictions, layer errors, state, grouped steps)."""
    state = model.init_state(frames.shape[1]) if state is None else state
    preds, errors, grouped = [], [], 0
    with pathways_disabled(model, set(disabled)):
        for f in frames:
            out = model.step(f, state)
            state = out.state
            preds.append(out.prediction)
            errors.append(out.layer_errors)
            grouped += getattr(state.caches[-1], "group", None) is not None
    return preds, errors, state, grouped


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    scale = max(float(b.abs().max()), 1e-30)
    assert float((a - b).abs().max()) <= RTOL * scale, what


def _assert_same_model(a: PVM, b: PVM) -> None:
    for l in range(a.n_layers):
        (w1a, w2a), (w1b, w2b) = a.layer_weights(l), b.layer_weights(l)
        _close(w1a, w1b, f"W1 L{l}")
        _close(w2a, w2b, f"W2 L{l}")
        _close(a.momentum_w1(l), b.momentum_w1(l), f"M1 L{l}")
        _close(getattr(a, f"m2_{l}"), getattr(b, f"m2_{l}"), f"M2 L{l}")


@pytest.mark.parametrize("layers,hidden,streams,schedule,disabled,kw", [
    ((16, 8, 4, 3, 2, 1), 49, 1, EVERY_LAYER, (), {}),                       # paper model
    ((16, 8, 4, 3, 2, 1), 49, 1, CROSSING, ("feedback",), {}),
    ((8, 4, 2, 1), 25, 1, EVERY_LAYER, (), {"center": True}),                # quick profile's model
    ((8, 4, 2, 1), 25, 1, CROSSING, ("lateral",), {"center": True}),
    ((8, 4, 2, 1), 25, 1, CROSSING, (), {"two_steps": True, "residual": True}),
    ((8, 4, 2, 1), 25, 3, EVERY_LAYER, (), {}),                              # several streams: layer by layer
])
def test_grouped_layers_equal_the_per_layer_path(layers, hidden, streams, schedule, disabled, kw):
    """Same seed, same frames, 50 steps: predictions, layer errors and every weight and momentum
    of the grouped and the per-layer path agree to float32 rounding."""
    side = layers[0] * 5
    frames = torch.rand(50, streams, 3, side, side, generator=torch.Generator().manual_seed(1))
    a, b = _model(True, layers, hidden, schedule, **kw), _model(False, layers, hidden, schedule, **kw)
    pa, ea, _, grouped = _run(a, frames, disabled)
    pb, eb, _, none = _run(b, frames, disabled)
    assert none == 0 and grouped == (len(frames) if streams == 1 else 0)
    for t, (x, y) in enumerate(zip(pa, pb)):
        _close(x, y, f"prediction {t}")
    for t, (x, y) in enumerate(zip(ea, eb)):
        assert x.keys() == y.keys() == ({f"L{l}" for l in range(len(layers))} if t else set())
        for k in x:
            _close(x[k], y[k], f"error {k} at {t}")
    _assert_same_model(a, b)


def test_layers_not_yet_learning_stay_unchanged():
    """Under a schedule that starts layer l at step 7 l, a grouped model's upper layers keep their
    initial weights exactly until their start, then change."""
    frames = torch.rand(16, 1, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    m = _model(True, (8, 4, 2, 1), 25, CROSSING)
    init = [tuple(t.clone() for t in m.layer_weights(l)) for l in range(4)]
    state = None
    for t in range(len(frames)):  # step t learns at the rates of learning step t
        _, _, state, _ = _run(m, frames[t:t + 1], state=state)
        for l in range(1, 4):
            started = t >= 7 * l
            same = all(torch.equal(w, w0) for w, w0 in zip(m.layer_weights(l), init[l]))
            assert same != started, (t, l)
    assert len({int(getattr(m, f"clock_{l}")) for l in (1, 2, 3)}) == 1  # learned as one group throughout


def test_a_stopped_layer_keeps_its_momentum_frozen():
    """A layer whose rate drops to 0 after it learned (a changed schedule) is frozen with its
    momentum, as layer by layer: the group then learns layer by layer."""
    frames = torch.rand(16, 1, 3, 40, 40, generator=torch.Generator().manual_seed(7))
    a, b = _model(True, (8, 4, 2, 1), 25, EVERY_LAYER), _model(False, (8, 4, 2, 1), 25, EVERY_LAYER)
    _, _, sa, _ = _run(a, frames[:8])
    _, _, sb, _ = _run(b, frames[:8])
    late = PVMSchedule(**{**EVERY_LAYER, "layer_delay": 1000})  # layers >= 1 at rate 0 from now on
    a.schedule = b.schedule = late
    frozen = [tuple(t.clone() for t in a.layer_weights(l)) for l in range(4)]
    pa, _, _, _ = _run(a, frames[8:], state=sa)
    pb, _, _, _ = _run(b, frames[8:], state=sb)
    for l in (1, 2, 3):
        assert all(torch.equal(w, w0) for w, w0 in zip(a.layer_weights(l), frozen[l]))
    assert not torch.equal(a.layer_weights(0)[0], frozen[0][0])
    for x, y in zip(pa, pb):
        _close(x, y, "prediction")
    _assert_same_model(a, b)


def test_checkpoints_keep_the_per_layer_keys_and_load_both_ways():
    """A grouped model's state dict has the per-layer model's keys and shapes; it loads into a
    per-layer model (and back) with identical weights, and the two continue to the same results."""
    frames = torch.rand(30, 1, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    a = _model(True, (8, 4, 2, 1), 25, CROSSING)
    _, _, sa, grouped = _run(a, frames[:20])
    assert grouped == 20
    fresh = _model(False, (8, 4, 2, 1), 25, CROSSING)
    sd = a.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in fresh.state_dict().items()}
    b = fresh
    b.load_state_dict({k: v.clone() for k, v in sd.items()})
    for l in range(4):
        for wa, wb in zip(a.layer_weights(l), b.layer_weights(l)):
            assert torch.equal(wa, wb)
    c = _model(True, (8, 4, 2, 1), 25, CROSSING)
    c.load_state_dict(b.state_dict())  # copied into the group's views: the grouped path reads them
    pa, _, _, _ = _run(a, frames[20:], state=sa.clone())
    pb, _, _, _ = _run(b, frames[20:], state=sa.clone())
    pc, _, _, gc = _run(c, frames[20:], state=sa.clone())
    assert gc == 10  # (the cloned state's cache has no group tensors: its first step learns layer by layer)
    for x, y, z in zip(pa, pb, pc):
        _close(x, y, "grouped vs per-layer")
        assert torch.equal(x, z)  # the same path from the same values: bit for bit
    _assert_same_model(a, b)


def test_moving_or_retyping_the_model_keeps_the_group_consistent():
    """.double() gives every buffer a new tensor; the group is rebuilt from them on the next step."""
    frames = torch.rand(12, 1, 3, 40, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a, b = _model(True, (8, 4, 2, 1), 25, EVERY_LAYER), _model(False, (8, 4, 2, 1), 25, EVERY_LAYER)
    _run(a, frames[:4].float())
    b.load_state_dict(a.state_dict())  # the same float32 weights and momentum in both
    a.double()
    b.double()
    sa, sb = a.init_state(1), b.init_state(1)
    pa, _, _, grouped = _run(a, frames[4:], state=sa)
    pb, _, _, _ = _run(b, frames[4:], state=sb)
    assert grouped == 8 and a.v1_1.dtype == torch.float64
    assert a.v1_1.untyped_storage().data_ptr() == a.v1_2.untyped_storage().data_ptr()  # views of one tensor
    for x, y in zip(pa, pb):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    for l in range(4):
        torch.testing.assert_close(a.layer_weights(l)[0], b.layer_weights(l)[0], rtol=1e-10, atol=1e-12)


def test_switching_paths_and_stream_counts_mid_run():
    """Grouped steps, per-layer steps (switch off, 2 streams: plain W1, then the dense pending
    momentum while it lives) and grouped steps again give the per-layer model's results."""
    frames = torch.rand(40, 2, 3, 40, 40, generator=torch.Generator().manual_seed(5))
    a, b = _model(True, (8, 4, 2, 1), 25, EVERY_LAYER), _model(False, (8, 4, 2, 1), 25, EVERY_LAYER)
    sa = sb = None
    for part, streams, on in ((frames[:8], 1, True), (frames[8:14], 1, False), (frames[14:20], 2, True),
                              (frames[20:], 1, True)):
        a.group_layers = on
        fa, fb = part[:, :streams], part[:, :streams]
        if sa is None or sa.h_all.shape[1] != streams:
            sa, sb = a.init_state(streams), b.init_state(streams)
        pa, _, sa, _ = _run(a, fa, state=sa)
        pb, _, sb, _ = _run(b, fb, state=sb)
        for x, y in zip(pa, pb):
            _close(x, y, f"prediction, {streams} streams, group {on}")
    _assert_same_model(a, b)


def test_reused_group_inputs_change_nothing():
    """The group writes its inputs into those of the forward that left the cache (as each layer
    does): bit for bit the results of a fresh tensor every step."""
    frames = torch.rand(8, 1, 3, 40, 40, generator=torch.Generator().manual_seed(6))
    a, b = _model(True, (8, 4, 2, 1), 25, EVERY_LAYER), _model(True, (8, 4, 2, 1), 25, EVERY_LAYER)
    sa, sb = a.init_state(1), b.init_state(1)
    reused = 0
    for f in frames:
        spare = sa.spare_group
        oa = a.step(f, sa)
        sb.spare_group = None
        ob = b.step(f, sb)
        sa, sb = oa.state, ob.state
        reused += spare is not None and sa.caches[-1].group[0] is spare
        assert torch.equal(oa.prediction, ob.prediction)
    assert reused == len(frames) - 3
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), key
