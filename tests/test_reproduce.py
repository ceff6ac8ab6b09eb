"""make reproduce-tables: the collector on tiny smoke cells (two seeds), resumable, every number traceable."""
import csv
import json
import re
import statistics
from pathlib import Path

import pytest

from predvis.reproduce import main
from predvis.tables import fmt

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


def _cell(folder: Path, name: str, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(json.dumps(fields))   # JSON is YAML


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("reproduce")
    cells = base / "cells"
    for name, exp, row in (("gopc1", "gopc1", "GOPC-1"), ("vae1", "vae1", "VAE-1")):
        _cell(cells, name, tables=["gopc_prediction", "gopc_speed"], row=row, experiment=exp, profile="smoke",
              seeds=[0, 1], overrides=TINY, probes=[{"probe": "predict", "figures": 0}])
    _cell(cells, "later", tables=["sleep"], row="sleep", kind="placeholder", note="not built yet: issue 7")
    args = ["--profile", "smoke", "--cells", str(cells), "--runs", str(base / "runs"), "--tables", str(base / "tables")]
    return {"base": base, "args": args, "runs": base / "runs", "tables": base / "tables"}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _independent(source: Path, field: str) -> float:
    """The number a values.csv field names, read without the collector's code."""
    kind, _, rest = field.partition(":")
    if kind == "json":
        return float(json.loads(source.read_text())[rest])
    if kind == "csv-last":
        return float(_rows(source)[-1][rest])
    assert kind == "csv-seqstd"
    cond, col = rest.rsplit(":", 1)
    key, want = cond.split("=")
    per = {}
    for r in _rows(source):
        if r[key] == want:
            per.setdefault(r["sequence"], []).append(float(r[col]))
    return statistics.stdev(statistics.mean(v) for v in per.values())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".reproduce.lock"}


def test_dry_listing_before_anything_ran(setup, capsys):
    assert main(setup["args"] + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gopc1\s+0\s+smoke\s+missing", out) and re.search(r"vae1\s+1\s+smoke\s+missing", out)
    assert re.search(r"later\s+-\s+smoke\s+placeholder\s+not built yet: issue 7", out)
    assert "5 jobs: 4 missing, 1 placeholder" in out
    assert not setup["runs"].exists() and not setup["tables"].exists()


def test_collector_tables_hold_the_numbers_of_the_linked_runs(setup, capsys):
    assert main(setup["args"]) == 0
    capsys.readouterr()
    tables = setup["tables"]
    values = _rows(tables / "values.csv")
    assert {v["file"] for v in values} == {"gopc_recon.md", "gopc_prior.md", "gopc_speed.md"}
    for v in values:
        source = (tables / v["source"]).resolve()
        assert source.is_relative_to(setup["runs"].resolve()) and source.exists()
        assert float(v["value"]) == pytest.approx(_independent(source, v["field"]), rel=1e-6)
    # the aggregate row is the mean over the two seeds of the per-seed numbers
    prior = (tables / "gopc_prior.md").read_text()
    for row in ("GOPC-1", "VAE-1"):
        per_seed = [float(v["value"]) for v in values if v["file"] == "gopc_prior.md" and v["row"] == row
                    and v["quantity"] == "mse"]
        assert len(per_seed) == 2
        line = next(ln for ln in prior.splitlines() if ln.startswith(f"| {row} |"))
        assert f"| {fmt(statistics.mean(per_seed))} ± {fmt(statistics.stdev(per_seed))} |" in line
    # every markdown link resolves to a file or run directory under the run root
    for md in tables.glob("gopc_*.md"):
        for target in re.findall(r"\]\(([^)]+)\)", md.read_text()):
            assert (tables / target).exists(), (md.name, target)
    speed = (tables / "gopc_speed.md").read_text()
    assert "time per batch, GOPC-1 / VAE-1" in speed and "206" in speed and "1.47 (2.5 / 1.7)" in speed
    index = (tables / "README.md").read_text()
    assert "**not built yet: issue 7**" in index and "[gopc_prior.md](gopc_prior.md)" in index
    assert "gopc1: done; vae1: done" in index
    for run in setup["runs"].glob("*/*_*"):
        assert (run / "cell-done.json").exists()


def test_second_invocation_runs_nothing(setup, capsys):
    before = _snapshot(setup["runs"])
    assert main(setup["args"]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert _snapshot(setup["runs"]) == before
    assert main(setup["args"] + ["--dry-run"]) == 0
    assert "5 jobs: 4 done, 1 placeholder" in capsys.readouterr().out


def test_interrupted_cell_resumes_in_place(tmp_path, monkeypatch, capsys):
    from predvis.methods import get_method

    cells = tmp_path / "cells"
    _cell(cells, "gopc1", tables=["gopc_speed"], row="GOPC-1", experiment="gopc1", profile="smoke", seeds=[0],
          overrides=TINY + ["train.epochs=2"])
    args = ["--profile", "smoke", "--cells", str(cells), "--runs", str(tmp_path / "runs"), "--tables", str(tmp_path / "t")]
    cls = get_method("gopc")
    original = cls.end_epoch

    def stop_in_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(cls, "end_epoch", stop_in_second_epoch)
    assert main(args) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    monkeypatch.setattr(cls, "end_epoch", original)
    assert main(args + ["--dry-run"]) == 0
    assert re.search(r"gopc1\s+0\s+smoke\s+interrupted\s+1 of 2 epochs, resumable", capsys.readouterr().out)
    assert main(args) == 0
    (run,) = (tmp_path / "runs" / "gopc1").glob("*_*")
    assert [r["epoch"] for r in _rows(run / "metrics" / "train.csv")] == ["1", "2"]
    assert (run / "cell-done.json").exists() and not (tmp_path / "runs" / ".reproduce.lock").exists()


@pytest.mark.parametrize("fields, message", [
    ({"tables": ["gopc_speed"], "row": "x", "experiment": "gopc1", "seed": [0]}, "did you mean 'seeds'"),
    ({"tables": ["gopc_sped"], "row": "x", "experiment": "gopc1"}, "did you mean 'gopc_speed'"),
    ({"tables": ["gopc_speed"], "row": "x", "experiment": "gopc1", "probes": [{"probe": "predikt"}]}, "did you mean 'predict'"),
    ({"tables": ["gopc_speed"], "row": "x", "experiment": "gopc1", "overrides": ["train.epoch=2"]}, "did you mean 'epochs'"),
])
def test_bad_cell_is_one_line_and_runs_nothing(tmp_path, capsys, fields, message):
    _cell(tmp_path / "cells", "bad", **fields)
    args = ["--profile", "smoke", "--cells", str(tmp_path / "cells"), "--runs", str(tmp_path / "runs"),
            "--tables", str(tmp_path / "t")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "t").exists()
