"""CLI smoke tests of `predvis deepdream`: still image, 3-frame zoom video, attack, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from predvis.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs/ root holding one smoke classifier run (a few seconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "classifier", "--profile", "smoke", "--out", str(root), "train.threads=1"]) == 0
    yield root
    torch.set_num_threads(before)


def dd(runs: Path, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["deepdream", "--runs", str(runs), "--profile", "smoke", "threads=1", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_classifier_run_has_accuracy(runs):
    run = next((runs / "classifier").iterdir())
    header = (run / "metrics" / "train.csv").read_text().splitlines()[0]
    assert "test_acc" in header and "val_acc" in header


def test_list_layers(runs, capsys):
    code, out, _ = dd(runs, capsys, "--list-layers")
    assert code == 0
    assert "conv3" in out and "(1, 16, 8, 8)" in out and "default layer conv3" in out


def test_still_image(runs, capsys):
    code, out, _ = dd(runs, capsys, "--objective", "conv3 + 0.5*relu2:3")
    assert code == 0
    run = Path(out.strip().splitlines()[-1])
    assert (run / "frames" / "dream.png").exists() and (run / "frames" / "side_by_side.png").exists()
    import imageio.v3 as iio

    raw, pair = iio.imread(run / "frames" / "dream.png"), iio.imread(run / "frames" / "side_by_side.png")
    assert pair.shape[1] >= 2 * 128 and pair.shape[0] > raw.shape[0]  # upscaled, captioned; the raw dream as is
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["last"] > summary["first"]
    for name in ("config.yaml", "cmd.txt", "env.json"):
        assert (run / name).exists()


def test_zoom_video_three_frames(runs, capsys):
    code, out, err = dd(runs, capsys, "--mode", "zoom", "video.layers=[conv2,conv3]", "video.layer_every=6")
    assert code == 0
    run = Path(out.strip().splitlines()[-1])
    assert len(sorted((run / "frames").glob("zoom_*.png"))) == 3
    import imageio.v3 as iio

    gif = iio.imread(run / "gifs" / "zoom.gif")
    assert gif.shape[0] == 3 and gif.shape[1] > max(128, iio.imread(run / "frames" / "zoom_000000.png").shape[0])
    try:
        import imageio_ffmpeg  # noqa: F401  (installed with predvis[dev])
    except ImportError:
        assert "MP4 skipped" in err and not (run / "gifs" / "zoom.mp4").exists()
    else:
        import imageio.v3 as iio

        mp4 = iio.imread(run / "gifs" / "zoom.mp4", plugin="FFMPEG")
        png = iio.imread(run / "frames" / "zoom_000000.png")
        assert mp4.shape[0] == 3 and mp4.shape[1:3] == png.shape[:2]
    rows = (run / "metrics" / "zoom.csv").read_text().splitlines()
    assert len(rows) == 4 and "conv2" in rows[1] and "conv3" in rows[2]


def test_attack(runs, capsys):
    code, out, _ = dd(runs, capsys, "--mode", "attack", "attack.images=20", "attack.eps=[0.3]", "attack.patch_at=[2,3]")
    assert code == 0
    run = Path(out.strip().splitlines()[-1])
    table = (run / "tables" / "adversarial.md").read_text()
    assert "PGD targeted" in table and "patch untargeted" in table and "eps 0.3" in table and "at (2, 3)" in table
    assert (run / "frames" / "adversarial_grid.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--objective", "conv33"], "did you mean conv3"),
    (["--image", "/no/such/file.png"], "is not a file"),
    (["--mode", "attack", "attack.eps=[-0.1]"], "attack.eps: must be >= 0"),
    (["--mode", "attack", "attack.patches=[40]"], "larger than the images"),
    (["dream.octavs=2"], "did you mean 'octaves'"),
    (["--model", "torch.nn:Identity", "--mode", "attack"], "needs a trained classifier run"),
    (["--mode", "attack", "attack.patches=[8]", "attack.patch_at=[24,0]"], "does not fit"),
])
def test_bad_input_is_one_line(runs, capsys, args, message):
    code, _, err = dd(runs, capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_weights_mismatch_and_unreadable_image(runs, capsys, tmp_path):
    bad = tmp_path / "w.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, bad)
    code, _, err = dd(runs, capsys, "--model", "predvis.backends.classifier.model:DigitClassifier", "--weights", str(bad))
    assert code == 2 and "does not match the model" in err
    junk = tmp_path / "x.png"
    junk.write_bytes(b"garbage")
    code, _, err = dd(runs, capsys, "--image", str(junk))
    assert code == 2 and "cannot read image" in err


def test_no_classifier_run(tmp_path, capsys):
    code, _, err = dd(tmp_path, capsys)
    assert code == 2 and "predvis train classifier" in err


def test_dream_on_a_vae1_run_encoder_and_decoder(tmp_path, capsys):
    """Dreaming on a predictive model's parts: the VAE-1 encoder (pixels) and decoder (latent space)."""
    tiny = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4",
            "train.threads=1"]
    assert main(["train", "vae1", "--profile", "smoke", "--out", str(tmp_path), *tiny]) == 0
    run = next((tmp_path / "vae1").iterdir())
    code, out, _ = dd(tmp_path, capsys, "--model", str(run), "--list-layers")
    assert code == 0 and "model.encoder" in out and "conv.2" in out
    code, out, _ = dd(tmp_path, capsys, "--model", str(run), "--objective", "conv.2:1")
    assert code == 0
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["size"] == [32, 32] and summary["last"] > summary["first"]
    code, out, _ = dd(tmp_path, capsys, "--model", str(run), "model.module=model.decoder", "--objective", "deconv.0")
    assert code == 0
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["size"] == [32, 32] and summary["last"] > summary["first"]
    code, _, err = dd(tmp_path, capsys, "--model", str(run), "model.module=model.encodr")
    assert code == 2 and "did you mean 'encoder'" in err


def test_dream_on_a_pvm_run(tmp_path, capsys):
    """A PVM has no forward pass: deepdream shows it a static image until it settles and ascends
    the gradient through those steps into the image; its layers are state0..state2 and prediction."""
    assert main(["train", "pvm", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    run = next((tmp_path / "pvm").iterdir())
    code, out, _ = dd(tmp_path, capsys, "--model", str(run), "--list-layers")
    assert code == 0 and "state2" in out and "prediction" in out and "(1, 9, 4, 4)" in out
    code, out, _ = dd(tmp_path, capsys, "--model", str(run), "--objective", "state1:3")
    assert code == 0
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["size"] == [16, 16] and summary["last"] > summary["first"]


def test_dream_on_a_recurrent_autoencoder_run(tmp_path, capsys):
    """A BLT autoencoder (depth-inversion run): its layers' settled (last unrolled) activations."""
    tiny = ["data.train_scenes=16", "data.val_scenes=8", "data.test_scenes=8", "eval.figures=1"]
    assert main(["train", "depth_inversion", "--profile", "smoke", "--out", str(tmp_path), *tiny]) == 0
    run = next((tmp_path / "depth_inversion").iterdir())
    code, out, _ = dd(tmp_path, capsys, "--model", str(run), "--list-layers")
    assert code == 0 and "encoder" in out
    code, out, _ = dd(tmp_path, capsys, "--model", str(run))
    assert code == 0
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["last"] > summary["first"]


@pytest.mark.parametrize("objective, words", [
    ("conv3:99", "channel 99 is out of range for layer 'conv3' (16 channels)"),
    ("conv2 + 0.5*conv3:16", "channel 16 is out of range for layer 'conv3'"),
    ("conv3:2:50:50", "unit (50, 50) is outside layer 'conv3'"),
])
@pytest.mark.bad_input("refused")
def test_objective_out_of_range_is_refused_before_a_run_exists(runs, capsys, objective, words):
    before = sorted(p.name for p in runs.rglob("*"))
    code, out, err = dd(runs, capsys, "--objective", objective)
    assert code == 2 and out == "", out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in runs.rglob("*")) == before  # no run directory, not even a failed one
