"""GOPC-2: the r^H inference step, hypernetwork shapes, stabilisers, the stepping interface and its
`hyper` lesion, the NaN guard with a real inf in the weights, and the CLI (train then predict)."""
import json
import math

import pytest
import torch

from predvis.cli import main
from predvis.experiment import load_experiment
from predvis.errors import ConfigError, TrainingDiverged
from predvis.backends.gopc.hierarchy import Gopc2Model, Gopc2ModelConfig, parse_stabiliser
from predvis.backends.gopc.hierarchy_stepper import Gopc2Stepper
from predvis.checkpoint import load_checkpoint
from predvis import experiment
from predvis.train import loop

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


def tiny(hyper="mixture", stabiliser="none", dtype=torch.float64, **kw) -> Gopc2Model:
    """A float64 GOPC-2 of a few dimensions; without D (hyper_dynamics 0) unless asked for."""
    torch.manual_seed(0)
    kw.setdefault("hyper_dynamics", 0)
    cfg = Gopc2ModelConfig(image_size=16, z_dim=6, r_dim=5, post_hidden=7, dec_channels=[4, 3], h_dim=3,
                           hyper_hidden=6, mixture=3, hyper=hyper, stabiliser=stabiliser, **kw)
    cfg.validate()
    return Gopc2Model(cfg).to(dtype)


@pytest.mark.parametrize("hyper,stab", [("mixture", "none"), ("full", "none"), ("mixture", "softmax+spectral"),
                                        ("full", "layernorm+spectral"), ("mixture", "sigmoid")])
def test_hyper_gradient_matches_finite_differences(hyper, stab):
    model = tiny(hyper, stab)
    b = 3
    h = torch.randn(b, 3, dtype=torch.float64) * 0.5
    r_prev, r = torch.randn(b, 5, dtype=torch.float64), torch.randn(b, 5, dtype=torch.float64)
    grad = model.hyper_grad(h, r_prev, r, create_graph=False)
    fd = torch.zeros_like(h)
    step = 1e-6
    with torch.no_grad():
        for i in range(b):
            for j in range(3):
                hp, hm = h.clone(), h.clone()
                hp[i, j] += step
                hm[i, j] -= step
                fd[i, j] = (model.hyper_energy(hp, r_prev, r).sum() - model.hyper_energy(hm, r_prev, r).sum()) / (2 * step)
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # the energy is per sample: the gradient of sample i does not depend on the others
    alone = model.hyper_grad(h[:1], r_prev[:1], r[:1], create_graph=False)
    assert torch.allclose(alone, grad[:1], rtol=1e-12, atol=1e-14)


def test_hyper_step_is_one_gradient_step_and_clip_bounds_it():
    model = tiny(hyper_step=0.7)
    h = torch.randn(2, 3, dtype=torch.float64)
    r_prev, r = torch.randn(2, 5, dtype=torch.float64), 10 * torch.randn(2, 5, dtype=torch.float64)
    grad = model.hyper_grad(h, r_prev, r, create_graph=False)
    assert torch.allclose(model.hyper_step(h, r_prev, r, create_graph=False), h - 0.7 * grad)
    clipped = tiny(stabiliser="clip", hyper_step=0.7, hyper_clip=0.5)
    moved = (clipped.hyper_step(h, r_prev, r, create_graph=False) - h).norm(dim=-1)
    assert (moved <= 0.7 * 0.5 + 1e-12).all() and grad.norm(dim=-1).min() > 0.5
    normed = tiny(stabiliser="normalise", hyper_step=0.7)
    moved = (normed.hyper_step(h, r_prev, r, create_graph=False) - h).norm(dim=-1)
    assert torch.allclose(moved, torch.full_like(moved, 0.7))


def test_slow_entries_of_r_hyper_step_by_their_own_size():
    model = tiny(hyper_step=0.7, hyper_slow=1, hyper_slow_step=0.1)
    h = torch.randn(2, 3, dtype=torch.float64)
    r_prev, r = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    grad = model.hyper_grad(h, r_prev, r, create_graph=False)
    step = torch.tensor([0.7, 0.7, 0.1], dtype=torch.float64)
    assert torch.allclose(model.hyper_step(h, r_prev, r, create_graph=False), h - step * grad)
    with pytest.raises(ConfigError, match="hyper_slow"):
        tiny(hyper_slow=4)


def test_mixture_and_full_hypernetwork_shapes():
    model = tiny("mixture", "softmax+spectral")
    h = torch.randn(4, 3, dtype=torch.float64)
    w = model.transition.weights(h)
    assert w.shape == (4, 3) and (w > 0).all() and torch.allclose(w.sum(-1), torch.ones(4, dtype=torch.float64))
    a, b = model.transition.generated(h)
    assert a.shape == (4, 5, 5) and b.shape == (4, 5)
    assert (torch.linalg.matrix_norm(model.transition.bases_now(), ord=2) <= 1 + 1e-9).all()
    assert (torch.linalg.matrix_norm(a, ord=2) <= 1 + 1e-9).all()  # a convex mix of bases of norm <= 1
    full = tiny("full", "none")
    a, b = full.transition.generated(h)
    assert a.shape == (4, 5, 5) and b.shape == (4, 5)
    assert full.transition.net[-1].out_features == 5 * 5 + 5
    # at r^H = 0 the full transition starts near the identity
    a0, _ = full.transition.generated(torch.zeros(1, 3, dtype=torch.float64))
    assert (a0[0] - torch.eye(5, dtype=torch.float64)).abs().max() < 0.5
    assert tiny("mixture", "none").transition.weights(h).sum(-1).sub(1).abs().max() > 1e-3  # unbounded


@pytest.mark.parametrize("text,ok", [("none", set()), ("clip+softmax", {"clip", "softmax"}), ("clap", None),
                                     ("sigmoid+layernorm", None), ("clip+normalise", None), ("", None)])
def test_stabiliser_names(text, ok):
    if ok is None:
        with pytest.raises(ConfigError, match="model.stabiliser"):
            parse_stabiliser(text)
    else:
        assert parse_stabiliser(text) == ok


def test_sequence_run_and_training_gradients_reach_the_hypernetwork():
    model = tiny("mixture", "clip+softmax+spectral").train()
    x = torch.rand(2, 5, 1, 16, 16, dtype=torch.float64)
    out = model.run(x, eps=torch.zeros(2, 5, 5, dtype=torch.float64))
    assert out.hyper.shape == (2, 5, 3) and out.trans_err.shape == (2, 5) and out.latents.shape == (2, 5, 5)
    assert torch.equal(out.hyper[:, 0], torch.zeros(2, 3, dtype=torch.float64))  # no step before frame 1
    assert (out.hyper[:, -1].abs().sum(-1) > 0).all()
    loss = out.loss(1.0)
    assert math.isfinite(loss.item())
    loss.backward()
    for name, p in model.transition.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.prior_logvar.grad.abs().sum() > 0


@pytest.mark.parametrize("dynamics", [False, True])
def test_training_takes_the_same_inner_steps_as_evaluation(dynamics):
    """With the graph kept (training), r^H's inner gradient is still the partial derivative with r_t
    held, not also through r_t's inference from the prior that r^H generated: the same r^H as without
    the graph."""
    model = moving_hyper() if dynamics else tiny()
    x = torch.rand(2, 6, 1, 16, 16, dtype=torch.float64)
    eps = torch.zeros(2, 6, 5, dtype=torch.float64)
    graph = model.train().run(x, eps=eps)
    plain = model.eval().run(x, sample=False)
    assert graph.hyper.grad_fn is not None
    torch.testing.assert_close(graph.hyper, plain.hyper)
    torch.testing.assert_close(graph.prior_mu, plain.prior_mu)


def test_context_rollout_steps_hyper_by_its_kl_pull_or_holds_it():
    """After the context, r_t is the prior mean, so the error term is 0 and r^H's inner step is the KL
    pull alone: r^H <- (1 - hyper_step) r^H (tiny()'s stabiliser is none: no clip); 'hold' keeps r^H as it was."""
    x = torch.rand(2, 6, 1, 16, 16, dtype=torch.float64)
    infer = tiny(hyper_step=0.3).eval().run(x, sample=False, context=3)
    for t in range(3, 6):
        torch.testing.assert_close(infer.hyper[:, t], 0.7 * infer.hyper[:, t - 1])
    assert infer.hyper[:, 2].abs().sum() > 0
    assert torch.allclose(infer.latents[:, 3:], infer.prior_mu[:, 3:])
    hold = tiny(hyper_step=0.3, hyper_rollout="hold").eval().run(x, sample=False, context=3)
    assert torch.equal(hold.hyper[:, 3:], hold.hyper[:, 2:3].expand(-1, 3, -1))
    torch.testing.assert_close(hold.hyper[:, :3], infer.hyper[:, :3])  # the observed frames are the same
    assert torch.allclose(hold.latents[:, 3:], hold.prior_mu[:, 3:])


def test_linear_readout_of_hyper_adds_l_times_hyper_to_the_offset():
    with_l, without = tiny(hyper_linear=0.5), tiny(hyper_linear=0.0)
    without.load_state_dict({k: v for k, v in with_l.state_dict().items() if k != "transition.linear"})
    r, h = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(with_l.transition(r, h) - without.transition(r, h), h @ with_l.transition.linear.T)
    assert tiny(hyper_linear=0.0).transition.linear is None


def moving_hyper(**kw) -> Gopc2Model:
    """tiny() with hyper_dynamics 4 and a non-zero last layer of D (a new D starts at zero)."""
    model = tiny(hyper_dynamics=4, **kw)
    with torch.no_grad():
        model.dynamics.net[-1].weight.normal_(0, 0.5)
        model.dynamics.net[-1].bias.normal_(0, 0.5)
    return model


def test_hyper_dynamics_starts_still_then_moves_r_hyper_between_frames():
    x = torch.rand(2, 6, 1, 16, 16, dtype=torch.float64)
    still, plain = tiny(hyper_dynamics=4).eval(), tiny().eval()
    plain.load_state_dict({k: v for k, v in still.state_dict().items() if not k.startswith("dynamics.")})
    assert torch.equal(still.run(x, sample=False).prior_mu, plain.run(x, sample=False).prior_mu)
    model = moving_hyper(hyper_rollout="hold").eval()
    out = model.run(x, sample=False, context=3)
    for t in range(3, 6):  # predicted frames, r^H held: only D moves it
        torch.testing.assert_close(out.hyper[:, t], model.propagate(out.hyper[:, t - 1], out.latents[:, t - 1]))
        torch.testing.assert_close(out.prior_mu[:, t], model.transition(out.latents[:, t - 1], out.hyper[:, t]))
    h1 = model.hyper_step(model.propagate(out.hyper[:, 0], out.latents[:, 0]), out.latents[:, 0], out.latents[:, 1],
                          create_graph=False)  # an observed frame: the inner step starts where D moved r^H
    torch.testing.assert_close(out.hyper[:, 1], h1)
    model.train()
    model.run(x, eps=torch.zeros(2, 6, 5, dtype=torch.float64)).loss(1.0).backward()
    assert all(p.grad.abs().sum() > 0 for p in model.dynamics.parameters())
    with pytest.raises(ConfigError, match="hyper_dynamics"):
        tiny(hyper_dynamics=-1)


@pytest.mark.parametrize("dynamics", [False, True])
def test_stepper_matches_the_sequence_model_and_hyper_lesion_holds_the_origin(dynamics):
    model = moving_hyper(hyper="mixture", stabiliser="clip+softmax") if dynamics else tiny("mixture", "clip+softmax")
    x = torch.rand(2, 5, 1, 16, 16, dtype=torch.float64)
    model.eval()
    ref = model.run(x, sample=False)
    stepper = Gopc2Stepper(model)
    state = stepper.init_state(2)
    for t in range(5):
        o = stepper.step(x[:, t], state)
        state = o.state
        assert torch.allclose(o.internals["hyper"], ref.hyper[:, t], atol=1e-10)
        assert torch.allclose(o.internals["latent"], ref.latents[:, t], atol=1e-10)
        if t < 4:
            assert torch.allclose(o.prediction, model.decoder(ref.prior_mu[:, t + 1]), atol=1e-10)
    stepper.disabled = {"hyper"}
    state = stepper.init_state(2)
    origin = torch.zeros(2, 3, dtype=torch.float64)
    for t in range(5):
        o = stepper.step(x[:, t], state)
        state = o.state
        assert torch.equal(o.internals["hyper"], origin)
        expect = model.decoder(model.transition(o.internals["latent"], origin))
        assert torch.allclose(o.prediction, expect, atol=1e-12)
    assert set(o.layer_errors) == {"pixel_mse", "latent"}
    model.use_hyper = False  # the sequence model's switch does the same
    assert torch.equal(model.run(x, sample=False).hyper, torch.zeros(2, 5, 3, dtype=torch.float64))


def test_real_inf_in_the_weights_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = load_experiment("gopc2", "smoke", SMOKE + ["train.epochs=3"])
    from predvis.backends.gopc.hierarchy_method import Gopc2Method

    original = Gopc2Method.train_step
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # first step of epoch 2 (2 steps per epoch): an inf in a transition basis
            with torch.no_grad():
                self.model.transition.bases[0, 0, 0] = float("inf")
        return original(self, batch)

    monkeypatch.setattr(Gopc2Method, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, step 3; last good checkpoint kept"):
        loop.train(cfg, tmp_path, {})
    run = next((tmp_path / "gopc2").iterdir())
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["modules"]["model"].values())
    assert '"diverged"' in (run / "status.json").read_text()


def test_cli_train_gopc2_smoke_then_predict(tmp_path, capsys):
    assert main(["train", "gopc2", "--profile", "smoke", "--out", str(tmp_path), *SMOKE]) == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["predict", run]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    text = open(f"{out}/tables/prior.md").read()
    assert "gopc2" in text and "copy last frame" in text
    assert main(["lesion", run, "--disable", "hyper"]) == 0


def test_bad_stabiliser_is_one_line(tmp_path, capsys):
    code = main(["train", "gopc2", "--profile", "smoke", "--out", str(tmp_path), "model.stabiliser=clip+wobble"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model.stabiliser" in err[0] and "wobble" in err[0]


def test_study_ridge_probe_and_table(tmp_path):
    import json

    import numpy as np

    from predvis.studies.gopc2_stability import plan, ridge_r2, slow_targets, write_table

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = np.stack([x @ rng.normal(size=6), rng.normal(size=300)], 1)  # one linear, one pure-noise target
    r2 = ridge_r2(x[:200], y[:200], x[200:], y[200:])
    assert r2[0] > 0.99 and r2[1] < 0.1
    params = np.stack([np.full((4, 1, 2), 5.0), np.full((4, 1, 2), 0.2), np.zeros((4, 1, 2))], -1)
    t = slow_targets(params, 10)
    assert t["omega"].shape == (4, 2) and t["velocity"].shape == (4, 10, 2)
    assert np.allclose(t["velocity"][:, 0], 1.0)  # a w cos(0)
    assert np.allclose(t["position"][:, 3], 5.0 * np.sin(0.6))
    assert np.allclose(t["displacement"][:, 1:], np.diff(t["position"], axis=1)) and (t["displacement"][:, 0] == 0).all()
    jobs = plan(2, 1, 1, ["thesis"])
    assert [j["tag"] for j in jobs] == ["default_s0", "gopc1_s0", "gopc1-open_s0", "default_s1", "thesis_s0"]
    (tmp_path / "jobs").mkdir()
    base = {"recon_mse": 0.01, "copy_last_mse": 0.03, "mean_frame_mse": 0.018, "test_sequences": 4, "budget_steps": 10}
    for job, prior, nan in ((jobs[0], 0.017, None), (jobs[1], 0.019, None), (jobs[2], 0.016, None),
                            (jobs[4], 0.05, 7)):
        (tmp_path / "jobs" / f"{job['tag']}.json").write_text(json.dumps({**job, **base, "prior_mse": prior, "nan_step": nan}))
    text = write_table(tmp_path, jobs, "smoke")
    assert "| thesis |" in text and "| 1/1 | 7 |" in text
    assert "| 0 | 0.0100 | 0.0190 | 0.0100 | 0.0160 | 0.0100 | 0.0170 | yes | no |" in text
    assert "| gopc1-open | GOPC-1 trained with" in text
    assert "Not finished yet (1): default_s1" in text


def test_tanh_bounds_the_prediction_and_spectral_gradient_is_finite_at_the_identity():
    model = tiny("mixture", "softmax+spectral+tanh", tanh_bound=2.0, hyper_linear=0.0)
    h = torch.randn(3, 3, dtype=torch.float64)
    big = 100 * torch.randn(3, 5, dtype=torch.float64)
    assert (model.transition(big, h).abs() <= 2.0).all()
    small = 1e-3 * torch.randn(3, 5, dtype=torch.float64)
    plain = tiny("mixture", "softmax+spectral", hyper_linear=0.0)
    assert torch.allclose(model.transition(small, h), plain.transition(small, h), rtol=1e-5, atol=1e-9)
    with torch.no_grad():  # bases exactly the identity: every singular value equal
        plain.transition.bases.copy_(torch.eye(5, dtype=torch.float64).expand(3, 5, 5) * 2)
    plain.transition.bases_now().sum().backward()
    assert torch.isfinite(plain.transition.bases.grad).all()
    with pytest.raises(ConfigError, match="one of sigmoid, layernorm, tanh"):
        parse_stabiliser("tanh+sigmoid")


def test_study_reuses_a_finished_run_of_the_same_model(tmp_path):
    """A study job whose model was already trained (same merged config but for train.threads, e.g. the
    collector's gopc1 cell) is evaluated from that run; another seed is trained."""
    from predvis.config import parse_overrides
    from predvis.experiment import finished_run_like
    from predvis.run import iter_runs
    from predvis.studies.gopc2_stability import run_job

    first = loop.train(load_experiment("gopc1", "smoke", SMOKE + ["seed=0"]), tmp_path, parse_overrides(SMOKE))
    job = {"exp": "gopc1", "label": "gopc1", "seed": 0, "short": False, "tag": "gopc1_s0"}
    record = run_job(job, "smoke", tmp_path, threads=1, short_epochs=1, extra=SMOKE)
    assert record["reused"] and record["run"] == str(first) and record["prior_mse"] > 0
    assert len(list(iter_runs(tmp_path, "gopc1"))) == 1
    other = run_job({**job, "seed": 1, "tag": "gopc1_s1"}, "smoke", tmp_path, threads=1, short_epochs=1, extra=SMOKE)
    assert "reused" not in other and other["run"] != str(first)
    assert len(list(iter_runs(tmp_path, "gopc1"))) == 2
    cfg = load_experiment("gopc1", "smoke", SMOKE + ["seed=0", "train.threads=1", "train.epochs=2"])
    assert finished_run_like(tmp_path, "gopc1", cfg.to_dict()) is None   # a different schedule is another model


def test_a_gopc2_run_made_before_its_training_changed_is_not_reused(tmp_path):
    from predvis.config import parse_overrides
    from predvis.experiment import finished_run_like

    cfg = load_experiment("gopc2", "smoke", SMOKE)
    run = loop.train(cfg, tmp_path, parse_overrides(SMOKE))
    assert finished_run_like(tmp_path, "gopc2", cfg.to_dict()) == run
    env = json.loads((run / "env.json").read_text())
    env["created"] = "2026-12-01T19:59:59+0000"   # as if made by the code before the change
    (run / "env.json").write_text(json.dumps(env))
    assert finished_run_like(tmp_path, "gopc2", cfg.to_dict()) is None
    env["created"] = "2026-12-01T21:00:00+0100"   # 20:00 UTC, the change itself, in another time zone
    (run / "env.json").write_text(json.dumps(env))
    assert finished_run_like(tmp_path, "gopc2", cfg.to_dict()) == run


def test_a_run_saved_before_the_new_keys_loads_with_their_old_meaning(tmp_path):
    """A GOPC-2 run whose config.yaml predates hyper_linear / hyper_rollout / hyper_slow / hyper_dynamics /
    train.open_loop was trained without the linear read-out or D, closed-loop, and evaluated with r^H held: it loads as that model (no
    missing-parameter error, same behaviour), and a study asking for that model reuses it."""
    from predvis.config import dump_yaml, parse_overrides, read_yaml
    from predvis.experiment import finished_run_like

    old = SMOKE + ["model.hyper_linear=0", "model.hyper_rollout=hold", "train.open_loop=0", "model.hyper_dynamics=0"]
    run = loop.train(load_experiment("gopc2", "smoke", old), tmp_path, parse_overrides(SMOKE))
    saved = read_yaml(run / "config.yaml")
    for key in ("hyper_linear", "hyper_rollout", "hyper_slow", "hyper_slow_step", "hyper_dynamics"):
        del saved["model"][key]
    del saved["train"]["open_loop"]
    (run / "config.yaml").write_text(dump_yaml(saved))
    cfg, method = experiment.load_trained(run)
    assert cfg.model.hyper_linear == 0 and cfg.model.hyper_rollout == "hold" and cfg.train.open_loop == 0
    assert method.model.transition.linear is None and method.model.dynamics is None
    assert finished_run_like(tmp_path, "gopc2", load_experiment("gopc2", "smoke", old).to_dict()) == run
    assert finished_run_like(tmp_path, "gopc2", load_experiment("gopc2", "smoke", SMOKE).to_dict()) is None
    new = load_experiment("gopc2", "smoke", [])
    assert new.model.hyper_linear == 0.5 and new.train.open_loop == 0.5  # new runs: the new defaults


@pytest.mark.parametrize("exp", ["gopc1", "gopc2"])
def test_open_loop_training_scores_the_last_sequences_on_their_predictions(exp):
    """train.open_loop 0.5 of a batch of 4: sequences 0-1 observed throughout, 2-3 after eval.context
    frames predicted by the prior; the loss is the mean of the four per-sequence objectives."""
    method, _ = experiment.build_method(load_experiment(exp, "smoke", SMOKE + ["train.open_loop=0.5"]))
    batch = next(iter(method.train_batches(0)))
    c, kl_w = method.cfg.eval.context, method.cfg.model.kl_weight
    method.model.train()
    loss, runs, metrics = method.training_runs(batch)
    closed = method.model.run(batch.x[:2], eps=batch.eps[:2])
    opened = method.model.run(batch.x[2:], eps=batch.eps[2:], context=c)
    torch.testing.assert_close(loss, (closed.loss(kl_w) + opened.loss(kl_w)) / 2)
    assert [o for _, o in runs] == [batch.x.shape[1], c]
    torch.testing.assert_close(runs[0][0].sse, closed.sse)
    pixels = batch.x[0, 0].numel()
    observed = torch.cat([closed.sse.flatten(), opened.sse[:, :c].flatten()])   # every observed frame
    torch.testing.assert_close(metrics["mse"], observed.mean() / pixels)
    assert torch.equal(opened.kl[:, c:], torch.zeros_like(opened.kl[:, c:]))  # predicted frames: no posterior
    torch.testing.assert_close(metrics["open_mse"], opened.sse[:, c:].mean() / pixels)
    assert not torch.allclose(opened.sse[:, c:], method.model.run(batch.x[2:], eps=batch.eps[2:]).sse[:, c:])
    loss.backward()
    assert all(p.grad is not None for p in method.model.parameters() if p.requires_grad)
    # a rank's part of the global batch runs the global batch's open-loop rows: two halves as two ranks
    # give the same loss and metrics (averaged over the ranks) as the whole batch in one process
    import predvis.backends.gopc.method as gopc_method
    from predvis.backends.gopc.method import TrainBatch

    halves = [TrainBatch(batch.x[p], batch.eps[p], None, 0.5, p.start, 4) for p in (slice(0, 2), slice(2, 4))]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gopc_method.distributed, "world_size", lambda: 2)
        ranks = [method.training_runs(h) for h in halves]
    torch.testing.assert_close((ranks[0][0] + ranks[1][0]) / 2, loss)
    for key in metrics:
        torch.testing.assert_close((ranks[0][2][key] + ranks[1][2][key]) / 2, metrics[key])
    assert ranks[0][2]["open_mse"] == 0 and torch.allclose(ranks[0][1][0][0].sse, closed.sse)
    method.cfg.train.open_loop = 0.0
    plain, _, metrics = method.training_runs(batch)
    torch.testing.assert_close(plain, method.model.run(batch.x, eps=batch.eps).loss(kl_w))
    assert "open_mse" not in metrics


def test_quadratic_probe_finds_an_even_target_that_a_linear_probe_cannot(tmp_path, capsys):
    """A state that flips sign with the phase holds |u| only as an even function: the ridge on the
    quadratic features recovers u^2, the linear one does not; then the probe runs on a real smoke run."""
    import numpy as np

    from predvis.config import parse_overrides
    from predvis.studies.gopc2_stability import ridge_r2
    from predvis.cli import main as cli
    from predvis.studies.quadratic_probe import quadratic, second_moments

    rng = np.random.default_rng(0)
    u = rng.uniform(0.5, 2.0, size=(400, 1))
    state = np.concatenate([u * rng.choice([-1.0, 1.0], size=(400, 1)), rng.normal(size=(400, 2))], 1)
    target = np.concatenate([u ** 2, u ** 2], 1)
    assert ridge_r2(state[:300], target[:300], state[300:], target[300:]).mean() < 0.05
    feats = quadratic(state)
    assert ridge_r2(feats[:300], target[:300], feats[300:], target[300:]).mean() > 0.95
    assert second_moments(np.ones((2, 5, 3))).shape == (2, 3 + 6)
    run = loop.train(load_experiment("gopc2", "smoke", SMOKE), tmp_path, parse_overrides(SMOKE))
    out = tmp_path / "probe.json"
    assert cli(["study", "quadratic_probe", str(out), str(run)]) == 0
    res = json.loads(out.read_text())[str(run)]
    assert set(res) == {f"{t}|hyper{v}" for t in ("omega", "amplitude", "speed")
                        for v in ("@end quadratic", "@ctx quadratic", " second moments over frames",
                                  " second moments over context")}
    assert cli(["study", "quadratic_probe", str(tmp_path / "no.json"), str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "no.json").exists()


@pytest.mark.parametrize("exp", ["gopc1", "vae1", "gopc2"])
def test_validation_loss_is_the_training_objective_with_posterior_means(exp):
    """val_loss (which picks best.pt) is the training loss of the posterior-mean run, GOPC-2's r^H KL
    included, averaged over the validation sequences."""
    method, _ = experiment.build_method(load_experiment(exp, "smoke", SMOKE))
    kl_w = method.cfg.model.kl_weight
    if exp == "gopc2":   # a D that moves r^H far from the origin, so its KL weighs in the loss
        with torch.no_grad():
            method.model.dynamics.net[-1].bias.fill_(3.0)
    method.model.eval()
    with torch.no_grad():
        out = method.model.run(method.val_set, sample=False)
    val_loss = method.validate()["val_loss"]
    assert math.isclose(val_loss, out.loss(kl_w).item(), rel_tol=1e-5)
    if exp == "gopc2":
        lower_only = (out.sse + kl_w * out.kl).sum(1).mean().item()
        assert val_loss - lower_only > 1e-3 * val_loss
