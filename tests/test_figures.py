"""Figures readable at 100 % zoom: the real probes at smoke size, their PNGs and GIFs measured."""
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from predvis.cli import main
from predvis.figures.canvas import MIN_TILE, RED, Grid, Row, draw, rgb, scale_for, upscale
from predvis.run import read_csv
from predvis.experiment import load_run_config, load_trained

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


def _places(image: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
    """Top-left corners where ``tile`` sits in ``image`` pixel for pixel."""
    h, w = tile.shape[:2]
    ys, xs = np.nonzero((image[:image.shape[0] - h + 1, :image.shape[1] - w + 1] == tile[0, 0]).all(-1))
    return [(y, x) for y, x in zip(ys, xs) if np.array_equal(image[y:y + h, x:x + w], tile)]


def test_sleep_figure_boxes_the_step_where_each_row_settled(tmp_path):
    from predvis.figures.sleep import write_dream_pair
    from predvis.probes.dream import detect_settling

    gen = torch.Generator().manual_seed(1)
    start = torch.rand(3, 16, 16, generator=gen)
    wandering = torch.rand(12, 3, 16, 16, generator=gen)          # never settles
    settling = torch.rand(12, 3, 16, 16, generator=gen)
    settling[4:] = settling[4]                                     # a fixed point from step 4
    dreams = {"before sleep": wandering, "after sleep": settling}
    settled = {n: detect_settling(d, 1e-3, 3) for n, d in dreams.items()}
    assert settled["before sleep"] is None and settled["after sleep"].step == 4
    png, gif = tmp_path / "a.png", tmp_path / "a.gif"
    write_dream_pair(png, gif, start, dreams, settled, ["title", "settings"])
    image = iio.imread(png)[..., :3]
    k = scale_for(16, 16)
    assert len(_places(image, upscale(rgb(start), k))) == 2     # the start opens both rows
    fixed = sorted(_places(image, upscale(rgb(settling[4]), k)), key=lambda p: p[1])
    assert len(fixed) == 6                                       # steps 4, 5, 6, 8, 9, 11 of the after row
    (y, x), rest = fixed[0], fixed[1:]
    assert (image[y - 1, x + 10] == RED).all() and (image[y + 20, x - 1] == RED).all()  # step 4 boxed
    assert not any((image[yy - 1, xx + 10] == RED).all() for yy, xx in rest)
    assert not any((image[yy - 1, xx + 10] == RED).all() for yy, xx in _places(image, upscale(rgb(wandering[4]), k)))
    frames = iio.imread(gif)
    assert frames.shape[0] == 12 and frames.shape[1] >= MIN_TILE
    assert not np.array_equal(frames[0][:, :100], frames[1][:, :100])  # the row label names the step
    first = png.read_bytes()
    write_dream_pair(png, gif, start, dreams, settled, ["title", "settings"])
    assert png.read_bytes() == first


def test_sleep_cli_figures_have_a_row_per_model_state(smoke_runs, tmp_path, capsys):
    small = ["patience=3", "burn_in=3", "noise=2", "grey=1", "real=2", "eval_noise=3", "eval_real=2", "limit=2"]
    assert main(["sleep", str(smoke_runs["pvm"]), "--cycles", "1", "--dream-steps", "12", "--rate", "0.5", "--out",
                 str(tmp_path), "--wake", *small]) == 0
    new = _out(capsys)
    pngs = sorted((new / "frames").glob("dream_*.png"))
    assert [p.name.split("_", 2)[2] for p in pngs] == ["noise.png", "grey.png", "real.png"]
    png = iio.imread(pngs[0])[..., :3]
    assert png.shape[0] >= 3 * MIN_TILE and png.shape[1] >= 9 * MIN_TILE  # before, after, control; start + 8 steps
    assert _has(png, RED)
    gif = iio.imread(new / "gifs" / pngs[0].with_suffix(".gif").name)
    assert gif.shape[0] == 12 and gif.shape[2] >= 4 * MIN_TILE          # start, before, after, control per step


def test_depth_invert_figure_columns_and_steps(tmp_path):
    from predvis.figures.depth_invert import write_depth_invert

    gen = torch.Generator().manual_seed(2)
    inputs, targets = torch.rand(2, 2, 1, 32, 32, generator=gen)
    outputs = torch.rand(3, 2, 1, 32, 32, generator=gen)
    png, gif = tmp_path / "d.png", tmp_path / "d.gif"
    write_depth_invert(png, gif, inputs, targets, np.array([[1, 2], [3, 4]]), outputs, ["title"], trained=2)
    image = iio.imread(png)[..., :3]
    k = scale_for(32, 32)
    assert k * 32 >= MIN_TILE
    where = {name: _places(image, upscale(rgb(t), k)) for name, t in
             (("input", inputs[1]), ("target", targets[1]), ("t1", outputs[0, 1]), ("t3", outputs[2, 1]))}
    assert all(len(v) == 1 for v in where.values())
    ys = {v[0][0] for v in where.values()}
    xs = [where[n][0][1] for n in ("input", "target", "t1", "t3")]
    assert len(ys) == 1 and xs == sorted(xs)                          # one row per scene, columns in order
    assert _has(image, RED)                                           # the input / output divider
    frames = iio.imread(gif)
    assert frames.shape[0] == 3 and frames.shape[2] >= 3 * MIN_TILE
    assert not np.array_equal(frames[0][:60], frames[1][:60])         # the title names the step
    reddish = [int(((f[..., 0] > 150) & (f[..., 1] < 90) & (f[..., 2] < 90)).sum()) for f in frames]
    assert reddish[2] > reddish[1] == reddish[0] > 0                 # step 3 is beyond the 2 trained: marked
    first = png.read_bytes()
    write_depth_invert(png, gif, inputs, targets, np.array([[1, 2], [3, 4]]), outputs, ["title"], trained=2)
    assert png.read_bytes() == first


def test_gif_keeps_smooth_greys_and_a_colour_map_within_a_few_levels(tmp_path):
    from predvis.figures.canvas import heat
    from predvis.viz import save_gif

    ramp = np.linspace(0.40, 0.62, 96, dtype=np.float32)[None].repeat(32, 0)   # a smooth grey field
    frames = [np.concatenate([upscale(rgb(ramp + 0.01 * t), 2), upscale(heat(ramp * (t + 1), 2.5), 2)])
              for t in range(4)]                                               # and a magma map: > 256 colours
    assert len(np.unique(np.concatenate(frames).reshape(-1, 3), axis=0)) > 256
    save_gif(tmp_path / "g.gif", frames)
    back = iio.imread(tmp_path / "g.gif")[..., :3].astype(int)
    assert max(int(np.abs(b - f).max()) for b, f in zip(back, frames)) <= 4
