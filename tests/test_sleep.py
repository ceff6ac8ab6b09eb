"""sleep: unlearning raises the settling energy; attractor detection and clustering; the CLI writes a
new run that every probe accepts and never touches the source run; bad input is one line."""
import hashlib
from pathlib import Path

import pytest
import torch

from predvis.cli import main
from predvis.runtime.unlearning import attractor_clip, settling_energy
from predvis.probes import attractors as A
from predvis.experiment import load_trained

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["patience=3", "burn_in=3", "noise=2", "grey=1", "real=2", "eval_noise=3", "eval_real=2", "limit=2"]


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def fixed_point_clip(stepper, burn_in: int = 4) -> torch.Tensor:
    """Dream from noise until it settles; the clip of the attractor it reached."""
    shape = tuple(stepper.frame_shape)
    starts = A.make_starts(shape, 2, 1, None, torch.Generator().manual_seed(0))
    dreams = A.closed_loop(stepper, starts.frames, prime=3, steps=40)
    for d, st in zip(dreams, A.settle_all(dreams, 1e-3, 3)):
        if st is not None:
            return attractor_clip(A.attractor_frames(d, st, 3)[None], burn_in)
    raise AssertionError("no dream settled")


@pytest.mark.parametrize("kind", ["pvm", "gopc1"])
def test_unlearning_step_raises_the_settling_energy_at_its_fixed_point(smoke_runs, kind):
    from predvis.experiment import load_trained_from

    _, method, _ = load_trained_from(smoke_runs[kind], with_training_state=True)  # with the optimiser state (GOPC preconditions by it)
    if kind == "gopc1":
        assert method.stepper()._preconditioners()
    stepper = method.stepper()
    stepper.set_learning(False)
    clip = fixed_point_clip(stepper)
    energy = lambda: float(settling_energy(stepper.step, stepper.init_state, clip, 4)[0])  # noqa: E731
    weights = {k: v.clone() for k, v in method.state_modules()[next(iter(method.state_modules()))].state_dict().items()}
    e0 = energy()
    assert e0 < 1e-3  # the dream drove its own prediction error toward zero
    clock = int(stepper.steps) if kind == "pvm" else None
    stepper.unlearn_step(clip, 0.5, 4)
    e1 = energy()
    assert e1 > e0, (e0, e1)
    after = method.state_modules()[next(iter(method.state_modules()))].state_dict()
    assert any(not torch.equal(weights[k], after[k]) for k in weights if weights[k].is_floating_point())
    if kind == "pvm":  # the developmental clock stands still and no momentum is left over
        assert int(stepper.steps) == clock
        assert all(float(stepper.momentum_w1(l).abs().max()) == 0 for l in range(stepper.n_layers))
        assert not stepper.learning and stepper.lr_scale == 1.0


def test_gopc2_unlearning_step_raises_the_settling_energy(smoke_args):
    """GOPC-2 plugs in through the same interface (an untrained smoke model; its dreams settle too)."""
    from predvis.experiment import load_experiment
    from predvis.backends.registry import get_method

    cfg = load_experiment("gopc2", "smoke", smoke_args)
    method = get_method(cfg.method)(cfg, torch.device("cpu"))
    stepper = method.stepper()
    clip = fixed_point_clip(stepper)
    energy = lambda: float(settling_energy(stepper.step, stepper.init_state, clip, 4)[0])  # noqa: E731
    e0 = energy()
    stepper.unlearn_step(clip, 0.5, 4)
    assert energy() > e0


def test_pvm_clear_momentum_keeps_the_weights(smoke_runs):
    _, method = load_trained(smoke_runs["pvm"])
    pvm = method.model
    pvm.set_learning(True)
    state = pvm.init_state(1)
    for t in range(4):  # leave momentum in the ring
        state = pvm.step(torch.rand(1, *pvm.frame_shape), state).state
    w = [pvm.layer_weights(l)[0].clone() for l in range(pvm.n_layers)]
    assert any(float(pvm.momentum_w1(l).abs().max()) > 0 for l in range(pvm.n_layers))
    pvm.clear_momentum()
    for l in range(pvm.n_layers):
        torch.testing.assert_close(pvm.layer_weights(l)[0], w[l], rtol=0, atol=1e-7)
        assert float(pvm.momentum_w1(l).abs().max()) == 0


def test_gopc_stepper_sees_weight_changes(smoke_runs):
    """The cached origin Jacobians follow the weights (unlearning and wake change them)."""
    from predvis.backends.gopc.stepper import GopcStepper

    _, method = load_trained(smoke_runs["gopc1"])
    stepper = method.stepper()
    x = torch.rand(2, *stepper.frame_shape)
    stepper.step(x, stepper.init_state(2))
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ours = stepper.step(x, stepper.init_state(2)).prediction
    fresh = GopcStepper(method.model).step(x, stepper.init_state(2)).prediction
    torch.testing.assert_close(ours, fresh)


def test_attractor_detection_and_clustering():
    a, b = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    fixed = torch.cat([torch.rand(5, 1, 4, 4), a.expand(15, -1, -1, -1)])[None]
    cycle = torch.cat([torch.rand(3, 1, 4, 4)] + [torch.stack([a, b])] * 9)  # period 2, ends ...a, b
    dreams = torch.cat([fixed, cycle[None, :20], fixed, cycle[None, 1:21]])
    settled = A.settle_all(dreams, 1e-3, 4)
    assert [(s.kind, s.period) for s in settled] == [("fixed point", 1), ("cycle", 2)] * 2
    atts = [A.attractor_frames(d, s, 4) for d, s in zip(dreams, settled)]
    assert atts[0].shape[0] == 1 and atts[1].shape[0] == 2
    # fixed point a; the cycle at either phase is one attractor (it contains a, so it meets the fixed point)
    assert A.cluster(atts, 1e-3) == [0, 0, 0, 0]
    assert A.cluster([atts[0], b[None]], 1e-3) == [0, 1]
    assert torch.all(A.diversity(fixed.expand(3, -1, -1, -1, -1)) == 0)
    d = A.diversity(torch.stack([a.expand(2, -1, -1, -1), b.expand(2, -1, -1, -1)]))
    assert torch.allclose(d, torch.ones(2))
    assert A.buckets(10, 4) == [(0, 2), (2, 5), (5, 8), (8, 10)]


@pytest.mark.parametrize("kind", ["pvm", "gopc1"])
def test_sleep_cli_writes_a_new_run_and_leaves_the_source_alone(smoke_runs, kind, tmp_path, capsys):
    source = smoke_runs[kind]
    before = tree_hashes(source)
    out = tmp_path / "slept"
    wake = "--wake" if kind == "pvm" else "--no-wake"
    code = main(["sleep", str(source), "--cycles", "2", "--dream-steps", "12", "--rate", "0.5", "--out", str(out),
                 wake, *SMALL])
    assert code == 0
    assert tree_hashes(source) == before  # the source run is only read
    new = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert new.parent == out / f"{kind}-sleep" and not list(new.parent.glob(".*.partial"))
    table = (new / "tables" / "sleep.md").read_text()
    for needle in ("dreams settled within 12 steps", "distinct attractors", "dream diversity, steps 1-3",
                   "held-out prediction error, mean squared", "## Cycles"):
        assert needle in table
    assert ("wake only (control)" in table) == (kind == "pvm")
    assert "PASS" in table or "FAIL" in table
    assert (new / "tables" / "sleep.csv").exists() and (new / "metrics" / "sleep_dreams.csv").exists()
    assert list((new / "gifs").glob("dream_*_noise.gif")) and list((new / "frames").glob("dream_*.png"))
    assert "rate: 0.5" in (new / "sleep.yaml").read_text()
    old = torch.load(source / "checkpoints" / "best.pt", weights_only=True)["modules"]
    slept = torch.load(new / "checkpoints" / "best.pt", weights_only=True)["modules"]
    name = next(iter(old))
    assert any(not torch.equal(old[name][k], slept[name][k]) for k in old[name] if old[name][k].is_floating_point())
    # every probe accepts the slept run
    assert main(["predict", str(new), "limit=2"]) == 0
    assert main(["dream", str(new), "--steps", "4", "--prime", "2"]) == 0
    assert tree_hashes(source) == before


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_sleep_bad_input_is_one_line_and_writes_nothing(smoke_runs, tmp_path, capsys, monkeypatch):
    run, out = smoke_runs["pvm"], tmp_path / "out"
    before = tree_hashes(run)
    cases = [(["--rate", "0"], "--rate"), (["--rate", "-0.1"], "--rate"), (["--cycles", "0"], "--cycles"),
             (["--cycles", "-2"], "--cycles"), (["--dream-steps", "0"], "--dream-steps"),
             (["noise_starts=3"], "unknown key 'noise_starts'"), (["patience=0"], "patience")]
    for args, needle in cases:
        assert main(["sleep", str(run), "--out", str(out), *args]) == 2, args
        assert needle in one_error_line(capsys)
    assert main(["train", "classifier", "--profile", "smoke", "--out", str(tmp_path / "cls")]) == 0
    capsys.readouterr()
    classifier = next((tmp_path / "cls" / "classifier").iterdir())
    assert main(["sleep", str(classifier), "--out", str(out)]) == 2
    assert "not a predictive stepping model" in one_error_line(capsys)
    from predvis.backends.gopc.method import GopcMethod

    class NoUnlearning:
        frame_shape, pathways, disabled = (1, 32, 32), ("prior",), set()

    monkeypatch.setattr(GopcMethod, "stepper", lambda self: NoUnlearning())
    assert main(["sleep", str(smoke_runs["gopc1"]), "--out", str(out)]) == 2
    assert "has no unlearning step" in one_error_line(capsys)
    assert main(["sleep", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "run not found" in one_error_line(capsys)
    assert not out.exists() and tree_hashes(run) == before
