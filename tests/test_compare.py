"""predvis compare: aggregates over seeds equal the runs' own numbers; mismatches are flagged, not averaged."""
import csv
import json
import statistics
from pathlib import Path

import pytest

from predvis.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


def _train(root: Path, *extra: str, predict: bool = True) -> Path:
    before = set((root / "gopc1").glob("*_*")) if (root / "gopc1").exists() else set()
    assert main(["train", "gopc1", "--profile", "smoke", "--out", str(root), *TINY, *extra]) == 0
    (run,) = set((root / "gopc1").glob("*_*")) - before
    if predict:
        assert main(["predict", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "s0": _train(root, "seed=0"),
        "s1": _train(root, "seed=1"),
        "other_test": _train(root, "seed=2", "data.test_seed=7"),   # a different test set
        "no_probe": _train(root, "seed=3", predict=False),           # lacks the predict metrics
        "root": root,
    }


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _compare(capsys, *args) -> Path:
    assert main(["compare", *map(str, args)]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_mean_std_n_equal_the_runs_csvs(runs, tmp_path, capsys):
    out = _compare(capsys, runs["s0"], runs["s1"], "--out", tmp_path)
    summary = {r["metric"]: r for r in _rows(out / "metrics" / "summary.csv")}
    finals = [_rows(runs[k] / "metrics" / "train.csv")[-1] for k in ("s0", "s1")]
    for col in ("loss", "val_loss", "val_prior_mse"):
        values = [float(f[col]) for f in finals]
        row = summary[f"train.{col}"]
        assert row["n"] == "2"
        assert float(row["mean"]) == pytest.approx(statistics.mean(values), rel=1e-6)
        assert float(row["std"]) == pytest.approx(statistics.stdev(values), rel=1e-5)
    predicted = [json.loads(next((runs[k] / "predict").glob("*/summary.json")).read_text()) for k in ("s0", "s1")]
    for kind in ("prior", "recon", "copy_last"):
        mean = statistics.mean(p[f"{kind}_mse"] for p in predicted)
        assert float(summary[f"predict.{kind}.mse"]["mean"]) == pytest.approx(mean, rel=1e-6)
    horizon = [r for r in _rows(out / "metrics" / "horizon.csv") if r["curve"] == "predict.horizon.prior.mse"]
    per_run = [{r["horizon"]: float(r["mse"]) for r in _rows(next((runs[k] / "predict").glob("*/metrics/horizon.csv")))
                if r["predictor"] == "prior"} for k in ("s0", "s1")]
    assert [r["horizon"] for r in horizon] == list(per_run[0])
    for r in horizon:
        assert float(r["mean"]) == pytest.approx(statistics.mean(p[r["horizon"]] for p in per_run), rel=1e-6)
    (group,) = _rows(out / "metrics" / "groups.csv")
    assert group["seeds"] == "0 1" and group["flags"] == ""
    table = (out / "tables" / "compare.md").read_text()
    assert "| train.loss |" in table and "## per horizon: predict.horizon.prior.mse" in table
    for name in ("bars.png", "train_curves.png", "horizon.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_mismatched_test_set_and_metrics_are_flagged_not_averaged(runs, tmp_path, capsys):
    out = _compare(capsys, runs["root"], "--out", tmp_path)
    groups = _rows(out / "metrics" / "groups.csv")
    assert len(groups) == 3 and all(g["experiment"] == "gopc1" for g in groups)
    main_group = next(g for g in groups if g["n"] == "2")
    assert main_group["seeds"] == "0 1"
    flags = " ".join(g["flags"] for g in groups)
    assert "test set differs (data.test_seed: 2024 vs 7)" in flags
    assert "metrics differ (lacks predict.* (" in flags
    summary = [r for r in _rows(out / "metrics" / "summary.csv") if r["group"] == main_group["group"]]
    loss = next(r for r in summary if r["metric"] == "train.loss")
    finals = [float(_rows(runs[k] / "metrics" / "train.csv")[-1]["loss"]) for k in ("s0", "s1")]
    assert float(loss["mean"]) == pytest.approx(statistics.mean(finals), rel=1e-6)
    assert "## Flags" in (out / "tables" / "compare.md").read_text()


def test_probe_folder_by_key_and_metric_selection(runs, tmp_path, capsys):
    probe = next((runs["s0"] / "predict").glob("*_*"))
    out = _compare(capsys, probe, runs["s1"], "--by", "seed", "--metric", "predict.*.mse", "--out", tmp_path)
    groups = _rows(out / "metrics" / "groups.csv")
    assert [g["by"] for g in groups] == ["0", "1"]
    metrics = {r["metric"] for r in _rows(out / "metrics" / "summary.csv")}
    assert metrics == {"predict.prior.mse", "predict.recon.mse", "predict.copy_last.mse", "predict.mean_frame.mse"}
    # compare outputs inside a searched folder are not read as runs
    first = _compare(capsys, runs["s0"], "--out", runs["root"] / "cmp")
    again = _compare(capsys, runs["root"], "--metric", "train.loss", "--out", runs["root"] / "cmp")
    assert first.parent == again.parent and sum(int(g["n"]) for g in _rows(again / "metrics" / "groups.csv")) == 4


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "not found"),
    (["{s0}/config.yaml"], "is a file"),
    (["{empty}"], "holds no runs"),
    (["{s0}", "--by", "train.lrr"], "did you mean 'train.lr'"),
    (["{s0}", "--by", "train"], "is a section"),
    (["{s0}", "--metric", "train.los"], "did you mean 'train.loss'"),
    (["{s0}", "--metric", "nothing.*"], "matches no metric"),
])
def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "nope", "s0": runs["s0"], "empty": tmp_path / "empty"}
    out = tmp_path / "out"
    assert main(["compare", *[a.format(**names) for a in args], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_one_probe_run_with_two_settings_gives_two_metric_families(runs, tmp_path, capsys):
    run = _train(tmp_path / "runs", "seed=5")                     # predict with the run's context (3)
    assert main(["predict", str(run), "context=2"]) == 0
    capsys.readouterr()
    out = _compare(capsys, run, "--metric", "predict[context=2].prior.mse", "--metric", "predict[context=3].*",
                   "--out", tmp_path)
    summary = {r["metric"]: float(r["mean"]) for r in _rows(out / "metrics" / "summary.csv")}
    for context in (2, 3):
        folder = next(p for p in (run / "predict").iterdir()
                      if json.loads((p / "summary.json").read_text())["context"] == context)
        prior = json.loads((folder / "summary.json").read_text())["prior_mse"]
        assert summary[f"predict[context={context}].prior.mse"] == pytest.approx(prior, rel=1e-6)
