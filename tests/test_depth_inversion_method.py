"""depth_inversion method: deterministic batches, held-out test set, probe sequences = per-step target error."""
import pytest
import torch

from predvis.experiment import load_experiment
from predvis.backends.depth_inversion.method import DepthInversionMethod
from predvis.probes.lesion import error_traces


pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = ["data.train_scenes=32", "data.val_scenes=16", "data.test_scenes=16", "eval.batch_size=16"]


def build(*extra):
    cfg = load_experiment("depth_inversion", "smoke", SMALL + list(extra))
    torch.manual_seed(0)
    return DepthInversionMethod(cfg, torch.device("cpu"))


def test_batches_are_deterministic_fixed_and_fresh():
    for fresh in ("false", "true"):
        a = [b[0] for b in build(f"data.fresh={fresh}").train_batches(1)]
        b = [b[0] for b in build(f"data.fresh={fresh}").train_batches(1)]
        assert all(torch.equal(x, y) for x, y in zip(a, b)) and sum(len(x) for x in a) == 32
    m = build("data.fresh=true")
    assert not torch.equal(next(iter(m.train_batches(0)))[0], next(iter(m.train_batches(1)))[0])


def test_probe_sequences_score_each_step_against_the_target():
    m = build("model.encoder=BL", "model.decoder=BLT", "model.steps=3")
    m.train_mode(False)
    seqs = m.test_sequences()
    held = m.scene_test_set("held_out")
    assert seqs.shape == (16, 4, 1, 32, 32) and torch.equal(seqs[:, 0], held.input) and torch.equal(seqs[:, 3], held.target)
    with torch.no_grad():
        out = torch.sigmoid(m.model(held.input))                      # (3, N, 1, 32, 32)
    want = (out - held.target).abs().flatten(2).mean(2).T               # (N, 3)
    got = error_traces(m.stepper(), seqs)["pixels"]
    assert torch.allclose(got, want, atol=1e-5)
    lesioned = error_traces(m.stepper(), seqs, {"lateral", "topdown"})["pixels"]
    assert torch.allclose(lesioned[:, 0], lesioned[:, -1], atol=1e-6)   # feed-forward: the same every step
