"""Video files / image folders through imageio, and the embedded photo videos."""
import numpy as np
import pytest
import torch

from predvis.data.photos import default_videos, photo_video
from predvis.data.video import load_video
from predvis.errors import PredvisError


def _frames(n=4, h=24, w=32):
    rng = np.random.default_rng(0)
    return (rng.random((n, h, w, 3)) * 255).astype(np.uint8)


def test_gif_is_read_and_resized(tmp_path):
    import imageio.v3 as iio

    frames = _frames()
    frames[1] = 0  # distinct frames so a GIF writer cannot merge them
    iio.imwrite(tmp_path / "v.gif", frames, duration=50, loop=0)
    v = load_video(tmp_path / "v.gif", (16, 16))
    assert v.shape == (4, 3, 16, 16) and v.dtype == torch.float32
    assert 0 <= float(v.min()) and float(v.max()) <= 1
    assert float(v[1].max()) < 0.05 < float(v[0].mean())
    assert load_video(tmp_path / "v.gif", (16, 16), max_frames=2).shape[0] == 2


def test_mp4_is_read(tmp_path):
    """An MP4 (H.264) file through imageio's ffmpeg backend (installed with predvis[dev])."""
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v3 as iio

    frames = np.zeros((6, 32, 32, 3), np.uint8)
    for i in range(6):
        frames[i, :, 4 * i: 4 * i + 8] = 255  # a white bar moving right
    iio.imwrite(tmp_path / "v.mp4", frames, plugin="FFMPEG", fps=10)
    v = load_video(tmp_path / "v.mp4", (16, 16))
    assert v.shape == (6, 3, 16, 16)
    cols = v[:, 0].mean(dim=1)  # (T, W): column brightness
    assert cols.argmax(dim=1).tolist() == sorted(cols.argmax(dim=1).tolist())  # the bar moves right
    assert cols[0, :4].mean() > 0.8 and cols[-1, :4].mean() < 0.2


def test_png_folder_in_name_order_and_grey(tmp_path):
    import imageio.v3 as iio

    for i, level in enumerate([10, 200, 100]):
        iio.imwrite(tmp_path / f"f{i:02d}.png", np.full((20, 20), level, np.uint8))
    v = load_video(tmp_path, (10, 10))
    assert v.shape == (3, 3, 10, 10)
    assert v[:, 0].mean(dim=(1, 2)).tolist() == pytest.approx([10 / 255, 200 / 255, 100 / 255], abs=1e-3)
    assert load_video(tmp_path, (10, 10), channels=1).shape == (3, 1, 10, 10)


def test_unreadable_video_is_one_line_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(PredvisError, match="cannot read video") as err:
        load_video(bad, (8, 8))
    assert "\n" not in str(err.value)
    with pytest.raises(PredvisError, match="not found"):
        load_video(tmp_path / "missing.gif", (8, 8))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredvisError, match="no image files"):
        load_video(tmp_path / "empty", (8, 8))


def test_photo_videos_are_deterministic_and_move():
    a = photo_video(3, 40, (20, 20))
    b = photo_video(3, 40, (20, 20))
    assert torch.equal(a, b) and a.shape == (40, 3, 20, 20)
    assert not torch.equal(a, photo_video(4, 40, (20, 20)))
    assert (a[1:] - a[:-1]).abs().mean() > 1e-3  # the camera or the ball moves every frame
    vids = default_videos(0, 2, 10, (16, 16), channels=1)
    assert len(vids) == 2 and vids[0].shape == (10, 1, 16, 16)
    with pytest.raises(PredvisError):
        photo_video(0, 0, (8, 8))
