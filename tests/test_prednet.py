"""PredNet (predvis/backends/prednet): the model's units and timing, pathway lesions, training
through the CLI with an exact resume, and the generic probes on a smoke run."""
import json

import pytest
import torch

from predvis.backends.prednet.model import PredNet, PredNetState, prednet_loss
from predvis.backends.prednet.stepper import PredNetStepper
from predvis.runtime.stepping import pathways_disabled
from predvis.runtime.unlearning import attractor_clip, settling_energy

pytestmark = pytest.mark.usefixtures("one_thread")


def small_net(seed: int = 0) -> PredNet:
    torch.manual_seed(seed)
    return PredNet([1, 3, 4], [2, 3, 4])


def clip(b: int = 2, t: int = 4, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, t, 1, size, size, generator=torch.Generator().manual_seed(seed))


def stepper_of(net: PredNet, size: int = 16) -> PredNetStepper:
    return PredNetStepper(net, (1, size, size), [1.0, 0.1, 0.1])


def test_shapes_of_forward_step_and_state():
    net = small_net()
    preds, errors = net(clip())
    assert preds.shape == (2, 4, 1, 16, 16) and errors.shape == (2, 4, 3)
    assert 0 <= preds.min() and preds.max() <= 1.0
    st = stepper_of(net)
    state = st.init_state(2)
    assert [r.shape[1:] for r in state.r] == [(2, 16, 16), (3, 8, 8), (4, 4, 4)]
    out = st.step(clip()[:, 0], state)
    assert out.prediction.shape == (2, 1, 16, 16) and out.layer_errors == {}  # nothing predicted yet
    out = st.step(clip()[:, 1], out.state)
    assert sorted(out.layer_errors) == ["L0", "L1", "L2"] and all(v.shape == (2,) for v in out.layer_errors.values())
    assert out.internals["R/L2"].shape == (2, 4, 4) and out.internals["E/L1"].shape == (2, 8, 8)
    assert net(torch.rand(3, 1, 16, 16))[0].shape == (3, net.static_steps, 1, 16, 16)  # a still image


@torch.no_grad()
def test_error_units_are_non_negative_and_zero_for_a_perfect_prediction():
    net = small_net()
    state = net.zero_state(2, 16, 16)
    r, _ = net.top_down(state)
    _, errors = net.bottom_up(clip()[:, 0], r)
    assert all(bool((e >= 0).all()) for e in errors) and errors[0].sum() > 0
    perfect = net.predict_layer(0, r[0])          # a frame equal to Ahat_0
    _, errors = net.bottom_up(perfect, r)
    assert float(errors[0].abs().max()) == 0.0
    # the two halves are the positive and negative parts of A - Ahat
    a = clip()[:, 0]
    _, errors = net.bottom_up(a, r)
    pos, neg = errors[0].chunk(2, dim=1)
    torch.testing.assert_close(pos - neg, a - perfect)


def test_stepper_predicts_the_next_frame_exactly_like_forward():
    net = small_net()
    x = clip(t=5)
    preds, _ = net(x)
    st = stepper_of(net)
    state = st.init_state(2)
    torch.testing.assert_close(net.predict_layer(0, state.r[0]), preds[:, 0])
    for t in range(4):
        out = st.step(x[:, t], state)
        state = out.state
        torch.testing.assert_close(out.prediction, preds[:, t + 1])   # made from frames <= t


def test_loss_weights_first_step_zero_and_layers_as_configured():
    errors = torch.tensor([[[5.0, 7.0], [1.0, 2.0], [3.0, 4.0]]])   # (B=1, T=3, layers=2)
    assert prednet_loss(errors, torch.tensor([1.0, 0.0])).item() == pytest.approx((1 + 3) / 2)
    assert prednet_loss(errors, torch.tensor([1.0, 0.1])).item() == pytest.approx((1 + 3) / 2 + 0.1 * (2 + 4) / 2)
    assert prednet_loss(errors, torch.tensor([1.0, 0.0]), first=2).item() == pytest.approx(3.0)


@torch.no_grad()
def test_l2_error_norm_averages_squared_error_units():
    x = clip(t=3)
    l1, l2 = small_net(), small_net()
    l2.error_norm = "l2"
    (p1, e1), (p2, e2) = l1(x), l2(x)
    torch.testing.assert_close(p1, p2)    # the same network; only the loss's units differ
    # layer 0: E_0's halves are |A_0 - Ahat_0| split by sign, over 2 C channels
    torch.testing.assert_close(e1[:, :, 0], (x - p1).abs().flatten(2).mean(2) / 2)
    torch.testing.assert_close(e2[:, :, 0], (x - p1).square().flatten(2).mean(2) / 2)


def capture_inputs(net: PredNet, steps: list) -> list:
    """Forward hooks recording every ConvLSTM gate input: steps[i][l] = input of R_l at call i."""
    handles = []
    for l, cell in enumerate(net.cells):
        def hook(module, args, output, l=l):
            if l == net.n_layers - 1:
                steps.append({})
            steps[-1][l] = args[0].detach().clone()
        handles.append(cell.gates.register_forward_hook(hook))
    return handles


@pytest.mark.parametrize("pathway", ["topdown", "recurrent"])
def test_a_lesioned_pathway_feeds_exact_zeros_and_changes_the_prediction(pathway):
    net = small_net()
    x = clip(t=4)
    intact, _ = net(x)
    st = stepper_of(net)
    calls: list = []
    handles = capture_inputs(net, calls)
    with pathways_disabled(st, {pathway}):
        lesioned, _ = net(x)
    for h in handles:
        h.remove()
    assert st.disabled == set() and net.disabled == set()
    assert not torch.allclose(intact[:, 1:], lesioned[:, 1:])
    for t, inputs in enumerate(calls):
        for l, inp in inputs.items():
            e = 2 * net.stack[l]
            r_prev, up = inp[:, e:e + net.r_stack[l]], inp[:, e + net.r_stack[l]:]
            if pathway == "recurrent":
                assert float(r_prev.abs().max()) == 0.0
                assert up.numel() == 0 or t == 0 or float(up.abs().max()) > 0
            else:
                assert up.numel() == 0 or float(up.abs().max()) == 0.0
                assert t <= 1 or float(r_prev.abs().max()) > 0  # R(0) = 0: zero biases, zero state


def test_unlearning_raises_the_settling_energy():
    net = small_net()
    st = stepper_of(net)
    cycle = clip(b=1, t=1)
    c = attractor_clip(cycle, burn_in=3)
    before = float(settling_energy(st.step, st.init_state, c, 3)[0])
    st.learning_rate = 1e-2
    st.unlearn_step(c, rate=1.0, burn_in=3)
    assert float(settling_energy(st.step, st.init_state, c, 3)[0]) > before


# --------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from predvis.cli import main

    root = tmp_path_factory.mktemp("prednet_runs")
    assert main(["train", "prednet", "--profile", "smoke", "--out", str(root)]) == 0
    return next((root / "prednet").iterdir())


def test_smoke_run_trains_and_resumes_exactly(tmp_path, monkeypatch, smoke_run):
    from predvis.backends.prednet.method import PredNetMethod
    from predvis.experiment import load_experiment
    from predvis.errors import Interrupted
    from predvis.run import read_csv
    from predvis.checkpoint import load_checkpoint
    from predvis.train import loop

    rows = read_csv(smoke_run / "metrics" / "train.csv")
    assert len(rows) == 2 and all(float(r["val_mse"]) > 0 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(1e-4)  # the rate drops after half of the 2 epochs
    original, calls = PredNetMethod.train_step, {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # first step of the second epoch (2 steps per epoch)
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(PredNetMethod, "train_step", interrupted)
    with pytest.raises(Interrupted, match="can be resumed"):
        loop.train(load_experiment("prednet", "smoke", []), tmp_path, {})
    monkeypatch.setattr(PredNetMethod, "train_step", original)
    half = next((tmp_path / "prednet").iterdir())
    assert loop.resume(half) == half
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (smoke_run, half))
    assert all(torch.equal(a["modules"]["model"][k], b["modules"]["model"][k]) for k in a["modules"]["model"])
    assert a["schedulers"]["lr"] == b["schedulers"]["lr"]
    assert read_csv(half / "metrics" / "train.csv")[1]["val_loss"] == rows[1]["val_loss"]


def test_probes_run_on_a_prednet_run(smoke_run):
    from predvis.cli import main

    assert main(["predict", str(smoke_run)]) == 0
    out = next((smoke_run / "predict").iterdir())
    table = (out / "tables" / "prior.md").read_text()
    assert "| prednet |" in table and "copy last frame" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prior_mse"] > 0 and summary["copy_last_mse"] >= 0
    assert main(["lesion", str(smoke_run), "--disable", "topdown"]) == 0
    lesion = next((smoke_run / "lesion").iterdir())
    assert "| L2 |" in next((lesion / "tables").iterdir()).read_text()
    assert main(["occlude", str(smoke_run), "--size", "8"]) == 0
    assert main(["dream", str(smoke_run), "--steps", "20", "--prime", "3"]) == 0
    assert any((next((smoke_run / "dream").iterdir()) / "frames").iterdir())


def test_bad_sizes_are_one_line_errors(tmp_path, capsys):
    from predvis.cli import main

    assert main(["train", "prednet", "--profile", "smoke", "--out", str(tmp_path), "data.size=30"]) == 2
    err = capsys.readouterr().err
    assert "data.size" in err and "Traceback" not in err and not (tmp_path / "prednet").exists()
    assert main(["train", "prednet", "--profile", "smoke", "--out", str(tmp_path), "model.layer_weights=[1.0]"]) == 2
    assert "model.layer_weights" in capsys.readouterr().err


def test_photo_video_clips_are_deterministic_and_split():
    from predvis.backends.prednet.data import clip_source
    from predvis.experiment import load_experiment

    cfg = load_experiment("prednet", "smoke", ["data.source=photos", "model.stack=[3,4,8]", "data.videos=2",
                                                "data.video_frames=24", "data.test_videos=1"])
    src = clip_source(cfg.data, 3)
    a, b = src.train_batch(3, [0, 0, 1]), src.train_batch(3, [0, 0, 1])
    assert a.shape == (3, 6, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, src.train_batch(3, [0, 0, 2]))
    val, test = src.val(), src.test()
    assert val.shape == test.shape == (2, 6, 3, 32, 32) and not torch.equal(val, test)
    assert 0 <= float(a.min()) and float(a.max()) <= 1


def test_feedforward_view_reads_the_last_step_and_passes_gradients_to_the_image():
    """deepdream's view: the still image shown static_steps times; R_l / E_l of the last step as layers."""
    from predvis.runtime.stepping import HasFeedforwardView

    torch.manual_seed(0)
    net = PredNet([1, 4, 8], frame_size=16).eval()
    assert isinstance(net, HasFeedforwardView)
    view = net.feedforward_view()
    assert view.fixed_size == 16 and view.channels == 1 and view.default_layer == "R1"
    seen = {}
    for name in ("R0", "E1", "prediction"):
        getattr(view.module, name).register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, o))
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    out = view.module(x)
    state = net.zero_state(2, 16, 16)
    for _ in range(net.static_steps):
        step = net.time_step(x, state)
        state = step.state
    assert torch.equal(seen["R0"], step.state.r[0]) and torch.equal(seen["E1"], step.e[1])
    assert torch.equal(out, step.ahat[0]) and seen["E1"].shape == (2, 8, 8, 8)
    seen["R0"].pow(2).mean().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
