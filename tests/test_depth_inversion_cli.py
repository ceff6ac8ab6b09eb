"""CLI smoke test: two depth-inversion variants on the smoke profile, lesion, occlude --mode
depth-invert, the study collector, and bad inputs (one line, exit 2)."""
from pathlib import Path

import imageio.v3 as iio
import pytest

from predvis.cli import main
from predvis.figures.canvas import MIN_TILE
from predvis.experiment import load_run_config


pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = ["data.train_scenes=32", "data.val_scenes=16", "data.test_scenes=16", "eval.batch_size=16"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for enc, dec in (("B", "B"), ("BL", "BT")):
        assert main(["train", "depth_inversion", "--profile", "smoke", "--out", str(root),
                     f"model.encoder={enc}", f"model.decoder={dec}"] + SMALL) == 0
        made[f"{enc}-{dec}"] = max((root / "depth_inversion").iterdir(), key=lambda p: p.stat().st_mtime)
    return made


def test_two_variants_lesion_and_depth_invert(runs, capsys):
    rec = runs["BL-BT"]
    assert (rec / "checkpoints" / "best.pt").exists() and "val_loss" in (rec / "metrics" / "train.csv").read_text()
    assert main(["lesion", str(rec), "--disable", "lateral", "--limit", "4"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert "| pixels |" in (out / "tables" / "lesion.md").read_text()
    assert main(["lesion", str(rec), "--disable", "lateral,topdown", "--limit", "4"]) == 0
    assert main(["occlude", str(rec), "--mode", "depth-invert", "--set", "seen", "--limit", "4"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert "| 2 |" in (out / "tables" / "depth_invert.md").read_text()
    png = iio.imread(out / "frames" / "depth_invert_seen.png")
    steps = load_run_config(rec).model.steps
    keep = min(load_run_config(rec).eval.figures, 4)
    assert png.shape[0] >= keep * MIN_TILE and png.shape[1] >= (2 + steps) * MIN_TILE  # input, target, t=1..T
    gif = iio.imread(out / "gifs" / "depth_invert_seen.gif")
    assert gif.shape[0] == steps and gif.shape[2] >= 3 * MIN_TILE                       # a frame per step
    assert main(["lesion", str(runs["B-B"]), "--disable", "lateral"]) == 2
    assert "its pathways: none" in capsys.readouterr().err


@pytest.mark.parametrize("override,text", [
    ("data.held_out=[[2,3],[3,4]]", "digit 3 is in two held-out pairs"),
    ("data.size=20", "multiple of 8"),
    ("model.steps=0", "T < 1"),
    ("model.decoder=BLTT", "unknown variant 'BLTT'"),
])
def test_bad_inputs_exit_2_with_one_line(override, text, capsys, tmp_path):
    assert main(["train", "depth_inversion", "--profile", "smoke", "--out", str(tmp_path), override]) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and len(err.splitlines()) == 1 and not (tmp_path / "depth_inversion").exists()


def test_study_collects_a_table(tmp_path, capsys):
    from predvis.cli import main as cli

    study = lambda argv: cli(["study", "depth_inversion", *argv])  # noqa: E731

    assert study(["--profile", "smoke", "--seeds", "1", "--out", str(tmp_path), "--variants", "B-BL",
                  "--additive", "none", "--sweep", "", "--threads", "0"] + SMALL) == 0
    table = next((tmp_path / "depth_inversion_study").glob("*/tables/depth_inversion.md")).read_text()
    assert "| B | BL |" in table and "1 finished models" in table and "| recurrent (15 variants)" in table
    assert "| BLT-BLT vs parameter-matched wide B-B | held_out | (not in this study's plan) |" in table
    assert study(["--profile", "smoke", "--variants", "B-XL"]) == 2
    assert "unknown variant 'XL'" in capsys.readouterr().err


def test_continued_study_records_its_new_plan_and_keeps_its_settings(tmp_path, capsys):
    """--study with more seeds trains only the new models and study.json (what the table and the
    reproduce collector read) holds the new plan; other overrides or profile are refused in one line."""
    import json

    from predvis.cli import main as cli

    study = lambda argv: cli(["study", "depth_inversion", *argv])  # noqa: E731

    base = ["--profile", "smoke", "--out", str(tmp_path), "--variants", "B-B", "--additive", "none", "--sweep", "",
            "--threads", "0"]
    assert study(base + ["--seeds", "1"] + SMALL) == 0
    folder = next((tmp_path / "depth_inversion_study").glob("*"))
    first = (folder / "jobs" / "occ_B-B_T2_s0.json").read_text()
    capsys.readouterr()
    assert study(base + ["--seeds", "2", "--study", str(folder)] + SMALL) == 0
    assert "1 of 2 jobs to run" in capsys.readouterr().err
    saved = json.loads((folder / "study.json").read_text())
    assert saved["seeds"] == 2 and [j["tag"] for j in saved["jobs"]] == ["occ_B-B_T2_s0", "occ_B-B_T2_s1"]
    assert (folder / "jobs" / "occ_B-B_T2_s0.json").read_text() == first   # not retrained
    table = (folder / "tables" / "depth_inversion.md").read_text()
    assert "2 finished models of 2 planned" in table
    assert study(base + ["--seeds", "2", "--study", str(folder)] + SMALL[:-1]) == 2
    err = capsys.readouterr().err.strip()
    assert "was run with overrides" in err and len(err.splitlines()) == 1
    assert json.loads((folder / "study.json").read_text()) == saved
