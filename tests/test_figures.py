"""Figures readable at 100 % zoom: the real probes at smoke size, their PNGs and GIFs measured."""
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from predvis.cli import main
from predvis.figures.canvas import MIN_TILE, RED, Grid, Row, draw, rgb, scale_for, upscale
from predvis.run import read_csv
from predvis.train.loop import load_run_config, load_trained

pytestmark = pytest.mark.usefixtures("one_thread")


def _out(capsys) -> Path:
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def _has(image: np.ndarray, colour) -> bool:
    return bool((image[..., :3] == np.asarray(colour, np.uint8)).all(-1).any())


def test_a_64_px_frame_is_drawn_at_128_px_nearest_and_the_same_every_time():
    frame = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0))
    k = scale_for(64, 64)
    assert k == 2 and scale_for(32, 32) == 4 and scale_for(200, 300) == 1
    grid = Grid([Row(["ground truth", "note"], [upscale(rgb(frame), k)])], title=["a title"], header=["t=1"])
    image = draw(grid)
    tile = upscale(rgb(frame), k)
    hits = [(y, x) for y in range(image.shape[0] - 127) for x in range(image.shape[1] - 127)
            if (image[y, x] == tile[0, 0]).all() and np.array_equal(image[y:y + 128, x:x + 128], tile)]
    assert len(hits) == 1  # the frame sits in the figure, 2x nearest, not blurred
    assert np.array_equal(image, draw(grid))


def test_predict_figure_rows_frames_divider_and_colour_error(smoke_runs, capsys):
    run = smoke_runs["gopc1"]
    assert main(["predict", str(run), "limit=2", "figures=1", "context=3"]) == 0
    out = _out(capsys)
    T, _, H, W = load_trained(run, device="cpu")[1].test_sequences().shape[1:]
    side = H * scale_for(H, W)
    assert side >= MIN_TILE
    png = iio.imread(out / "frames" / "sample00.png")[..., :3]
    assert png.shape[0] >= 4 * side and png.shape[1] >= T * side
    assert _has(png, RED)  # the context / forecast divider
    assert (png[..., 0].astype(int) - png[..., 2]).std() > 0  # |error| in a colour map, frames grey
    gif = iio.imread(out / "gifs" / "sample00.gif")
    assert gif.shape[0] == T and gif.shape[1] >= 4 * side
    assert not (out / "frames" / "sample01.png").exists()


def test_dream_figure_panels_and_settling(smoke_runs, capsys):
    run = smoke_runs["pvm"]
    assert main(["dream", str(run), "--steps", "12", "--prime", "3"]) == 0
    out = _out(capsys)
    layers = len(load_run_config(run).model.layers)
    png = iio.imread(out / "frames" / "dream.png")[..., :3]
    # input, prediction, |error| at >= 128 px, then one state row per layer at >= 96 px
    assert png.shape[0] >= 3 * MIN_TILE + layers * 96
    assert _has(png, RED)  # the priming / dreaming divider
    assert iio.imread(out / "gifs" / "dream.gif").shape[0] == 15
    assert (out / "plots" / "dream_change.png").exists()
    assert not list((out / "frames").glob("step_*.png"))


def test_occlude_and_lesion_figures(smoke_runs, capsys):
    run = smoke_runs["pvm"]
    assert main(["occlude", str(run), "--size", "6", "--limit", "1"]) == 0
    out = _out(capsys)
    png = iio.imread(out / "frames" / "occlude.png")[..., :3]
    assert png.shape[0] >= (2 + 4) * MIN_TILE and _has(png, RED)  # true, shown, 4 conditions; outline
    T = load_trained(run, device="cpu")[1].test_sequences().shape[1]
    assert iio.imread(out / "gifs" / "occlude.gif").shape[0] == T - 1
    assert main(["lesion", str(run), "--disable", "feedback", "--limit", "1"]) == 0
    out = _out(capsys)
    png = iio.imread(out / "frames" / "lesion.png")[..., :3]
    assert png.shape[0] >= 5 * MIN_TILE  # true, intact, lesioned, two |error| rows
    assert iio.imread(out / "gifs" / "lesion.gif").shape[0] == T - 1
    assert (out / "plots" / "lesion.png").exists()


def test_train_writes_loss_plot_and_no_empty_folders(smoke_runs):
    for kind in ("pvm", "gopc1"):
        run = smoke_runs[kind]
        assert iio.imread(run / "plots" / "loss.png").shape[1] >= 400
        for folder in ("frames", "gifs"):
            assert not (run / folder).exists()


def test_pvm_records_its_scheduled_learning_rate(smoke_runs):
    run = smoke_runs["pvm"]
    schedule = load_run_config(run).model.build(0).schedule
    rows = read_csv(run / "metrics" / "train.csv")
    for row in rows:
        lr = float(row["lr"])
        assert np.isfinite(lr) and lr == pytest.approx(schedule.lr(0, int(row["step"])))
