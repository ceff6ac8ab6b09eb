"""CLI smoke tests: dream, lesion, occlude on a PVM smoke run and on a GOPC-1 smoke run."""
from pathlib import Path

import pytest

from predvis.cli import main


@pytest.fixture(scope="module")
def runs(smoke_runs):
    # conftest's session runs; the PVM one trains with blind spots (data.spot_p): the input is partly
    # grey, the target the whole frame
    return smoke_runs


@pytest.mark.parametrize("kind", ["pvm", "gopc1"])
def test_dream_lesion_occlude(runs, kind, capsys):
    run = runs[kind]
    assert main(["dream", str(run), "--steps", "6", "--prime", "2"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out / "metrics" / "dream.csv").read_text().count("\n") == 7 and (out / "gifs" / "dream.gif").exists()
    if kind == "pvm":
        assert main(["dream", str(run), "--steps", "2", "--spot", "--frame", "1"]) == 0
    pathway = "feedback,lateral" if kind == "pvm" else "prior"
    assert main(["lesion", str(run), "--disable", pathway, "--limit", "2"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    table = (out / "tables" / "lesion.md").read_text()
    assert "| pixels |" in table and (out / "plots" / "lesion.png").exists()
    for mode in ("blindspot", "surround") if kind == "pvm" else ("blindspot",):
        assert main(["occlude", str(run), "--mode", mode, "--size", "6", "--limit", "2"]) == 0
        out = Path(capsys.readouterr().out.strip().splitlines()[-1])
        assert "| intact |" in (out / "tables" / "occlude.md").read_text()
        assert (out / "gifs" / "occlude.gif").exists()


def test_newest_pvm_run_and_bad_input(runs, capsys):
    root = str(runs["root"])
    assert main(["lesion", "--runs", root, "--disable", "feedback", "--limit", "1"]) == 0
    assert str(runs["pvm"]) in capsys.readouterr().out
    before = sorted(p.name for p in runs["gopc1"].iterdir())
    assert main(["lesion", str(runs["gopc1"]), "--disable", "feedback"]) == 2
    assert main(["occlude", str(runs["pvm"]), "--where", "100,100"]) == 2
    assert main(["dream", str(runs["pvm"]), "--steps", "0"]) == 2
    assert main(["occlude", str(runs["pvm"]), "--mode", "ring"]) == 2
    err = capsys.readouterr().err
    assert "pathway 'feedback' does not exist" in err and "outside" in err and "--steps" in err
    assert sorted(p.name for p in runs["gopc1"].iterdir()) == before  # nothing half-written


def test_lesion_traces_of_a_gopc_run_have_one_value_per_step(runs):
    """The probe's own `pixels` (mean absolute error) and the stepper's `pixel_mse` stay apart."""
    import torch

    from predvis.probes.lesion import error_traces
    from predvis.experiment import load_trained

    _, method = load_trained(runs["gopc1"], device="cpu")
    seqs = method.test_sequences()[:2]
    traces = error_traces(method.stepper(), seqs)
    T = seqs.shape[1]
    assert set(traces) == {"pixels", "pixel_mse"}
    assert all(v.shape == (2, T - 1) for v in traces.values())
    assert not torch.equal(traces["pixel_mse"], traces["pixels"])
