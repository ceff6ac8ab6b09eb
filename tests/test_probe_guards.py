"""Probe guards: bad options are one line and write nothing; probe folders appear complete or not at
all; every setting a probe used is in its summary.json; compare flags groups probed differently."""
import csv
import json
import shutil
from pathlib import Path

import pytest

from predvis.cli import main


@pytest.fixture(scope="module")
def runs(smoke_runs):
    return smoke_runs


def tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (files) or -1 (folders)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


def copy_run(run: Path, root: Path, name: str) -> Path:
    """A copy of a trained run (config, checkpoints, status) under ``root/<experiment>/name``, without
    the probe folders other tests wrote into the original."""
    dest = root / run.parent.name / name
    shutil.copytree(run, dest, ignore=lambda d, names: [n for n in names if Path(d) == run and n not in
                                                        ("config.yaml", "checkpoints", "status.json", "env.json",
                                                         "metrics", "overrides.yaml", "cmd.txt")])
    return dest


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# each: (run kind, argv after the command's run argument, words the error line must hold)
BAD_INPUT = {
    "occlude size 0": ("pvm", ["occlude", "--size", "0"], "--size"),
    "dream spot size 0": ("pvm", ["dream", "--spot", "--size", "0"], "--size"),
    "dream size without spot": ("pvm", ["dream", "--size", "3"], "--spot"),
    "occlude limit -1": ("pvm", ["occlude", "--limit", "-1"], "--limit"),
    "lesion limit -2": ("pvm", ["lesion", "--disable", "feedback", "--limit", "-2"], "--limit"),
    "lesion limit above the sequences": ("pvm", ["lesion", "--disable", "feedback", "--limit", "99"], "has only"),
    "predict limit 0": ("pvm", ["predict", "--limit", "0"], "--limit: must be > 0"),
    "predict context 0": ("gopc1", ["predict", "--context", "0"], "--context: must be > 0"),
    "predict limit above the sequences": ("gopc1", ["predict", "--limit", "999"], "--limit: the run has only"),
    "predict old form limit 0": ("pvm", ["predict", "limit=0"], "--limit: must be > 0"),
    "dream steps 0": ("pvm", ["dream", "--steps", "0"], "--steps"),
    "dream prime -3": ("pvm", ["dream", "--prime", "-3"], "--prime"),
    "dream prime above the frames": ("pvm", ["dream", "--prime", "500"], "--prime"),
    "dream frame -1": ("pvm", ["dream", "--frame", "-1"], "--frame"),
    "dream frame past the end": ("pvm", ["dream", "--frame", "9999"], "--frame"),
    "lesion duplicate pathway": ("pvm", ["lesion", "--disable", "feedback,feedback"], "twice"),
    "occlude unknown shape": ("pvm", ["occlude", "--shape", "hex"], "--shape"),
    "dream every 0": ("pvm", ["dream", "--every", "0"], "--every"),
}


@pytest.mark.bad_input("refused")
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_probe_option_is_one_line_and_writes_nothing(runs, case, capsys):
    kind, argv, words = BAD_INPUT[case]
    before = tree(runs["root"])
    capsys.readouterr()
    assert main([argv[0], str(runs[kind]), *argv[1:]]) == 2
    assert words in one_error_line(capsys.readouterr().err)
    assert tree(runs["root"]) == before


@pytest.mark.bad_input("refused")
def test_unwritable_output_location_fails_before_any_work(runs, tmp_path, capsys):
    blocker = tmp_path / "some_regular_file"
    blocker.write_text("not a folder\n")
    run = copy_run(runs["pvm"], tmp_path / "copies", "r1")
    (run / "occlude").write_text("a file where the probe folder goes\n")
    before = tree(tmp_path)
    for argv in (["sleep", str(run), "--out", str(blocker)],
                 ["sleep", str(run), "--out", str(blocker / "below")],
                 ["compare", str(run), "--out", str(blocker)],
                 ["train", "pvm", "--profile", "smoke", "--out", str(blocker)],
                 ["occlude", str(run), "--limit", "1"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        line = one_error_line(capsys.readouterr().err)
        assert "is a file, not a folder" in line, line
    assert tree(tmp_path) == before


@pytest.mark.bad_input("interrupted")
@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_a_probe_stopped_midway_leaves_no_folder(runs, tmp_path, monkeypatch, capsys, fault):
    import predvis.figures.stepping as stepping

    run = copy_run(runs["pvm"], tmp_path, "r1")
    real = stepping.write_occlude

    def half_then_fail(out, *args, **kw):
        real(out, *args, **kw)  # the figures are written, then the probe is stopped
        raise fault("stopped")

    monkeypatch.setattr(stepping, "write_occlude", half_then_fail)
    before = tree(run)
    capsys.readouterr()
    if fault is KeyboardInterrupt:
        assert main(["occlude", str(run), "--limit", "1"]) == 130
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == "interrupted: probe folder discarded" and "Traceback" not in err
    else:
        with pytest.raises(RuntimeError):
            main(["occlude", str(run), "--limit", "1"])
    assert tree(run) == before  # no .partial staging folder, no empty occlude/ folder


def test_summary_records_every_setting_and_the_checkpoint(runs, tmp_path, capsys):
    import torch

    run = copy_run(runs["pvm"], tmp_path, "r1")
    payload = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert main(["occlude", str(run), "--size", "6", "--where", "7,8", "--limit", "1", "--shape", "disc"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert {k: settings[k] for k in ("mode", "size", "where", "shape", "limit", "sequences", "warmup")} == {
        "mode": "blindspot", "size": 6, "where": [7, 8], "shape": "disc", "limit": 1, "sequences": 1, "warmup": 1}
    assert settings["source"] == str(run) and settings["source_running"] is False
    assert settings["checkpoint"] == {"file": "checkpoints/best.pt", "epochs": payload["epoch"] + 1,
                                      "step": payload["step"]}
    assert not list(run.glob("occlude/.*"))

    assert main(["dream", str(run), "--steps", "3", "--prime", "2", "--spot", "--size", "4"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert {k: settings[k] for k in ("steps", "prime", "frame", "spot", "size", "patience")} == {
        "steps": 3, "prime": 2, "frame": None, "spot": True, "size": 4, "patience": 10}
    assert len(settings["where"]) == 2


@pytest.mark.bad_input("accepted")
def test_predict_on_a_run_still_training_warns_and_records_it(runs, tmp_path, capsys):
    run = copy_run(runs["gopc1"], tmp_path, "r1")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    capsys.readouterr()
    assert main(["predict", str(run), "limit=1", "figures=0"]) == 0
    cap = capsys.readouterr()
    warnings = [line for line in cap.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "still training" in warnings[0] and "checkpoints/" in warnings[0]
    summary = json.loads((Path(cap.out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["settings"]["source_running"] is True and summary["settings"]["source_state"] == "running"
    assert summary["settings"]["checkpoint"]["file"] in ("checkpoints/best.pt", "checkpoints/last.pt")
    assert f"epoch {summary['settings']['checkpoint']['epochs']}" in warnings[0]


def test_compare_flags_groups_probed_with_different_settings(runs, tmp_path, capsys):
    root = tmp_path / "runs"
    a, b = copy_run(runs["pvm"], root, "a"), copy_run(runs["pvm"], root, "b")
    assert main(["occlude", str(a), "--size", "4", "--limit", "1"]) == 0
    assert main(["occlude", str(b), "--size", "6", "--limit", "1"]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    with open(out / "metrics" / "groups.csv", newline="") as handle:
        groups = list(csv.DictReader(handle))
    assert len(groups) == 2
    flags = " ".join(g["flags"] for g in groups)
    assert "probe settings differ (probe.occlude.size: 4 vs 6" in flags or \
        "probe settings differ (probe.occlude.size: 6 vs 4" in flags


def test_dream_gif_takes_every_nth_step_and_the_last(runs, tmp_path, capsys):
    import imageio.v3 as iio

    from predvis.probes.dream import gif_every

    assert gif_every(510, None) == 2 and gif_every(50_010, None) == 167 and gif_every(50_010, 1) == 1
    run = copy_run(runs["pvm"], tmp_path, "r1")
    assert main(["dream", str(run), "--steps", "30", "--prime", "2", "--every", "7"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert iio.imread(out / "gifs" / "dream.gif").shape[0] == 6   # steps 0, 7, 14, 21, 28 and 31
    assert (out / "metrics" / "dream.csv").read_text().count("\n") == 31
    assert json.loads((out / "summary.json").read_text())["settings"]["every"] == 7
    assert (out / "frames" / "dream.png").exists() and not list((out / "gifs").glob(".*"))


def test_gif_stream_writes_every_frame_with_one_palette(tmp_path):
    import numpy as np
    from PIL import Image

    from predvis.viz import GifStream

    rng = np.random.default_rng(0)
    frames = [(rng.integers(0, 4, (20, 30, 3)) * 64).astype(np.uint8) for _ in range(12)]
    frames[5] = frames[5][:15]                           # a shorter frame is padded white
    gif = GifStream(tmp_path / "gifs" / "a.gif", frames[:4], fps=10)
    for f in frames:
        gif.add(f)
    assert not (tmp_path / "gifs" / "a.gif").exists()   # only under a temporary name until closed
    gif.close()
    im = Image.open(tmp_path / "gifs" / "a.gif")
    assert im.n_frames == 12 and im.info["loop"] == 0 and im.info["duration"] == 100
    for i in range(12):
        im.seek(i)
        got = np.asarray(im.convert("RGB"))
        want = frames[i] if i != 5 else np.pad(frames[5], ((0, 5), (0, 0), (0, 0)), constant_values=255)
        assert np.array_equal(got, want)
    dropped = GifStream(tmp_path / "b.gif", frames[:2])
    dropped.add(frames[0])
    dropped.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gifs"]
