"""The long profile: its cells plan, learning curves read from a growing train.csv, and a run that another
process is still training is left alone by the collector and tabled as it stands (--tables-only)."""
import json
import platform
import re
import subprocess
import sys

import pytest

from predvis.cli import main as cli
from predvis.reproduce.curves import Curve, at_step, at_wall, first_below, progress, read_curve
from predvis.run import write_csv


def main(argv: list[str]) -> int:
    """``predvis reproduce ARGV``: its exit status."""
    return cli(["reproduce", *argv])


pytestmark = pytest.mark.usefixtures("one_thread")


def test_long_cells_plan_the_depth_variants_pvm_and_gopc():
    from predvis.reproduce.cells import cells_dir, load_cells
    from predvis.reproduce.collector import plan

    cells = load_cells(cells_dir("long"), "long")
    jobs = plan(cells)
    depth = [j for j in jobs if j.cell.experiment == "depth_inversion"]
    rows = {j.cell.row for j in depth}
    assert rows == {"B-B", "B-BL", "BL-B", "BLT-BLT", "B-B additive", "B-BL additive"}
    assert all(j.cell.seeds == [0, 1] for j in depth)
    for j in depth:   # fresh scenes and the held-out curve, one thread, matched steps for every variant
        assert j.config["data"]["fresh"] and j.config["eval"]["curve"] == ["held_out"]
        assert j.config["train"]["threads"] == 1 and j.config["train"]["epochs"] * 500 == 60_000
    assert {j.cell.experiment for j in jobs} == {"depth_inversion", "pvm", "gopc1", "vae1"}
    assert next(j for j in jobs if j.cell.experiment == "pvm").config["train"]["streams"] == 8
    # the long cells are not part of the other profiles
    assert not [c for c in load_cells(cells_dir("quick"), "quick") if "depth_long" in c.tables]


def test_curve_reads_steps_wall_time_and_matched_points(tmp_path):
    run = tmp_path / "run"
    rows = [{"epoch": i + 1, "step": 500 * (i + 1), "held_out_sse": sse, "seconds": 100.0}
            for i, sse in enumerate([70.0, 50.0, 29.0, 31.0])]
    write_csv(run / "metrics" / "train.csv", rows)
    c = read_curve(run, "B-B", 0)
    assert [p["step"] for p in c.points] == [500, 1000, 1500, 2000]
    assert [p["wall"] for p in c.points] == [100.0, 200.0, 300.0, 400.0]   # training time summed over epochs
    assert c.steps == 2000 and c.wall == 400.0
    assert at_step(c, 1200, "held_out_sse") == 50.0 and at_step(c, 499, "held_out_sse") is None
    assert at_wall(c, 350.0, "held_out_sse") == 29.0
    assert first_below(c, "held_out_sse", 30.0)["step"] == 1500
    assert first_below(c, "held_out_sse", 20.0) is None
    assert Curve(run, "empty").steps == 0


def _depth_cell(folder, name, row, extra):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(json.dumps({
        "tables": ["depth_long"], "row": row, "experiment": "depth_inversion", "profile": "smoke", "seeds": [0],
        "overrides": ["train.epochs=2", "eval.curve=[held_out]", "train.threads=1"] + extra}))


def test_run_trained_elsewhere_is_left_alone_and_tabled_as_it_stands(tmp_path, capsys):
    cells = tmp_path / "cells"
    _depth_cell(cells, "bb", "B-B", ["model.encoder=B", "model.decoder=B"])
    _depth_cell(cells, "bbl", "B-BL", ["model.encoder=B", "model.decoder=BL"])
    args = ["--profile", "smoke", "--cells", str(cells), "--runs", str(tmp_path / "runs"), "--tables", str(tmp_path / "t")]
    assert main(args) == 0
    runs = sorted((tmp_path / "runs" / "depth_inversion").glob("*_*"))
    assert len(runs) == 2
    curve = read_curve(runs[0])
    assert len(curve.points) == 2 and all("held_out_sse" in p for p in curve.points)

    # pretend the first run is still being trained by a live process of this host
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (runs[0] / "cell-done.json").unlink()     # written only after training and probes
        status = runs[0] / "status.json"
        status.write_text(json.dumps({"state": "running", "epoch": 1, "epochs": 2, "pid": sleeper.pid,
                                      "host": platform.node()}))
        before = (runs[0] / "metrics" / "train.csv").read_text()
        capsys.readouterr()
        assert main(args + ["--dry-run"]) == 0
        assert re.search(rf"training\s+pid {sleeper.pid}, 2 of 2 epochs; left alone", capsys.readouterr().out)
        assert progress(runs[0])["state"] == "training"
        assert main(args) == 0                      # a normal invocation does not resume it
        assert (runs[0] / "metrics" / "train.csv").read_text() == before
        assert json.loads(status.read_text())["pid"] == sleeper.pid
        assert main(args + ["--tables-only"]) == 0
        table = (tmp_path / "t" / "depth_long.md").read_text()
        assert f"training (pid {sleeper.pid}): 2 of 2 epochs" in table
        assert "B-BL - B-B" in table and "at matched steps" in table
        assert (tmp_path / "t" / "curves" / "depth_long_steps.png").stat().st_size > 0
        assert (tmp_path / "t" / "curves" / "depth_long_wall_time.png").stat().st_size > 0
        # matched compute: each variant's step cost measured side by side once, kept in the runs root
        assert "## Contrasts at matched compute" in table
        assert (tmp_path / "t" / "curves" / "depth_long_compute.png").stat().st_size > 0
        costs = json.loads((tmp_path / "runs" / "step_costs.json").read_text())
        assert set(costs["seconds"]) == {"B-B", "B-BL"} and all(v > 0 for v in costs["seconds"].values())
        assert main(args + ["--tables-only"]) == 0      # a second writing reuses them
        assert json.loads((tmp_path / "runs" / "step_costs.json").read_text()) == costs
    finally:
        sleeper.kill()
        sleeper.wait()
    assert progress(runs[0])["state"] == "interrupted"   # the process is gone: resumable, not "training"
    assert main(args + ["--dry-run"]) == 0
    assert "interrupted" in capsys.readouterr().out
