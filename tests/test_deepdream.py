"""deepdream engine: objectives, transforms, layer hooks, the recipe, videos, model and image sources."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from predvis.errors import PredvisError
from predvis.backends.classifier.model import DigitClassifier
from predvis.probes.deepdream import objectives as O
from predvis.probes.deepdream import sources as S
from predvis.probes.deepdream import transforms as T
from predvis.probes.deepdream.attacks import LinfBall
from predvis.probes.deepdream.engine import Dreamer, LayerSchedule, Recipe, dream_video, zoom_video
from predvis.probes.deepdream.layers import LayerTap, list_layers, spatial_children


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return DigitClassifier()


def noise(size=40, channels=1, seed=0):
    return S.load_image("noise", channels, size, torch.Generator().manual_seed(seed))


def run(model, spec, recipe, image=None, layers=None, **kw):
    obj = spec if isinstance(spec, O.Objective) else O.parse(spec)
    dreamer = Dreamer(model, layers or obj.layers)
    history: list[float] = []
    out = dreamer.dream(noise() if image is None else image, obj, recipe,
                        torch.Generator().manual_seed(1), history=history, **kw)
    return out, history


# --- the recipe makes the objective rise -------------------------------------------------------

@pytest.mark.parametrize("spec", ["conv2", "conv3:5", "conv3:1:4:4", "class:3", "relu2 + 0.5*conv3:7"])
def test_objective_rises_without_jitter(model, spec):
    _, h = run(model, spec, Recipe(octaves=1, steps=12, jitter=0, step_size=0.02))
    assert h[-1] > h[0] * 1.2 if h[0] > 0 else h[-1] > h[0]
    # mostly monotone: at least 10 of 11 steps go up
    assert sum(b > a for a, b in zip(h, h[1:])) >= len(h) - 2


def test_objective_rises_with_full_recipe(model):
    """Jitter, three octaves with detail carried, blur and tv on: the last octave ends higher."""
    image = noise(48)
    recipe = Recipe(octaves=3, octave_scale=1.4, steps=8, jitter=4, blur=0.5, tv=0.01)
    out, h = run(model, "conv3", recipe, image=image)
    assert len(h) == 24 and out.shape == image.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    dreamer = Dreamer(model, ["conv3"])
    before = dreamer.activations(image, ["conv3"])["conv3"].pow(2).mean()
    after = dreamer.activations(out, ["conv3"])["conv3"].pow(2).mean()
    assert after > 1.5 * before


def test_guide_objective_rises(model):
    guide_image = S.load_image("camera", 1, 32)
    dreamer = Dreamer(model, ["conv2"])
    feats = dreamer.features(guide_image, "conv2")
    assert feats.shape == (32, 16 * 16)
    obj = O.parse("guide:conv2", guide_features=lambda name: dreamer.features(guide_image, name))
    _, h = run(model, obj, Recipe(octaves=1, steps=10, jitter=0, step_size=0.02))
    assert h[-1] > h[0]


def test_step_changes_pixels_by_step_size_on_average(model):
    image = noise(40)
    dreamer = Dreamer(model, ["conv2"])
    x, _ = dreamer.step(image, O.layer("conv2"), Recipe(jitter=3, clip=False, step_size=0.01),
                        torch.Generator().manual_seed(0))
    assert float((x - image).abs().mean()) == pytest.approx(0.01, rel=1e-4)


def test_projection_holds_in_dream(model):
    image = noise(40)
    eps = 0.03
    project = LinfBall(image, eps)
    out, _ = run(model, "conv3", Recipe(octaves=1, steps=10, step_size=0.02), image=image, project=project)
    assert torch.all(out <= (image + eps).clamp(max=1)) and torch.all(out >= (image - eps).clamp(min=0))
    assert float((out - image).abs().max()) > 0.9 * eps


def test_normalisation_is_applied_inside(model):
    """mean/std given to the Dreamer are applied before the model, so it sees (x - m) / s."""
    image = noise(32)
    plain = Dreamer(model, ["conv1"]).activations(image * 2.0 - 0.5, ["conv1"])["conv1"]
    norm = Dreamer(model, ["conv1"], mean=[0.25], std=[0.5]).activations(image, ["conv1"])["conv1"]
    assert torch.allclose(plain, norm, atol=1e-5)
    with pytest.raises(PredvisError, match="std"):
        Dreamer(model, ["conv1"], mean=[0.5], std=[0.0])


def test_recipe_validation(model):
    with pytest.raises(PredvisError, match="octave_scale"):
        run(model, "conv2", Recipe(octave_scale=1.0))
    with pytest.raises(PredvisError, match="steps"):
        run(model, "conv2", Recipe(steps=0))


def test_parse_errors():
    for bad in ["", "conv2 +", "conv2:x", "class:1:2", "a:1:2", "guide:conv2", "x*conv2"]:
        with pytest.raises(PredvisError):
            O.parse(bad)
    obj = O.parse("conv2 + 0.5*conv3:4 + class:2@fc")
    assert obj.layers == {"conv2", "conv3", "fc"}


def test_channel_out_of_range_is_one_line(model):
    with pytest.raises(PredvisError, match="channel 99 is out of range"):
        run(model, "conv2:99", Recipe(octaves=1, steps=1))


# --- transforms --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(32, 32), (33, 47)])
def test_zoom_keeps_size_and_centre(size):
    h, w = size
    x = torch.rand(1, 2, h, w, generator=torch.Generator().manual_seed(0))
    z = T.zoom(x, 0.1)
    assert z.shape == x.shape
    # exactly centred: zoom commutes with flips of either axis
    assert torch.allclose(T.zoom(x.flip(2), 0.1), z.flip(2), atol=1e-6)
    assert torch.allclose(T.zoom(x.flip(3), 0.1), z.flip(3), atol=1e-6)
    # a bright centre dot stays at the centre and grows
    dot = torch.zeros(1, 1, 33, 33)
    dot[..., 16, 16] = 1.0
    zd = T.zoom(dot, 0.2)
    assert zd[0, 0].argmax() == 16 * 33 + 16
    assert int((zd > 0.05).sum()) > 1
    assert torch.equal(T.zoom(x, 0.0), x)
    with pytest.raises(PredvisError):
        T.zoom(x, 1.0)


def test_octave_sizes_smallest_first():
    assert T.octave_sizes((100, 140), 4, 1.4) == [(36, 51), (51, 71), (71, 100), (100, 140)]
    assert T.octave_sizes((20, 20), 4, 2.0, min_side=8) == [(10, 10), (20, 20)]


def test_blur_and_roll():
    x = torch.zeros(1, 1, 15, 15)
    x[..., 7, 7] = 1.0
    b = T.gaussian_blur(x, 1.0)
    assert float(b.sum()) == pytest.approx(1.0, abs=1e-5) and b[0, 0].argmax() == 7 * 15 + 7
    assert torch.equal(T.roll(T.roll(x, 3, -2), -3, 2), x)
    assert T.total_variation(torch.ones(1, 1, 5, 5)) == 0


# --- layers ------------------------------------------------------------------------------------

def test_forward_stops_at_deepest_hooked_layer(model):
    calls = []
    model.fc.register_forward_hook(lambda *a: calls.append("fc"))
    model.conv3.register_forward_hook(lambda *a: calls.append("conv3"))
    with LayerTap(model, ["conv1", "conv2", "output"]) as tap:
        acts = tap.run(torch.zeros(1, 1, 28, 28), ["conv1", "conv2"])
        assert set(acts) == {"conv1", "conv2"} and calls == []
        acts = tap.run(torch.zeros(1, 1, 28, 28), ["output"])
        assert acts["output"].shape == (1, 10) and calls == ["conv3", "fc"]


def test_unknown_layer_suggests_close_names(model):
    with pytest.raises(PredvisError, match="did you mean conv3"):
        Dreamer(model, ["conv33"])
    with pytest.raises(PredvisError, match="--list-layers"):
        LayerTap(model, ["nothing_like_it"])


def test_list_layers_and_all_schedule(model):
    rows = list_layers(model, torch.zeros(1, 1, 28, 28))
    names = [r[0] for r in rows]
    assert names[:3] == ["conv1", "relu1", "pool1"] and names[-1] == "output"
    assert dict((r[0], r[2]) for r in rows)["pool2"] == (1, 32, 7, 7)
    assert spatial_children(model, torch.zeros(1, 1, 28, 28))[-1] == "pool3"
    assert "fc" not in spatial_children(model, torch.zeros(1, 1, 28, 28))


# --- videos ------------------------------------------------------------------------------------

def test_layer_schedule_switches_every_m_iterations(model):
    sched = LayerSchedule(["conv1", "conv2", "conv3"], every=4)
    assert [sched.layer_at(i) for i in range(0, 14, 2)] == ["conv1", "conv1", "conv2", "conv2", "conv3",
                                                              "conv3", "conv1"]
    dreamer = Dreamer(model, sched.layers)
    recipe = Recipe(octaves=1, steps=2, jitter=2)
    frames = list(zoom_video(dreamer, noise(32), sched, recipe, frames=3, zoom=0.05,
                             generator=torch.Generator().manual_seed(0)))
    assert len(frames) == 3 and all(f.shape == (1, 1, 32, 32) for f in frames)
    assert dreamer.iteration == 6 and sched.layer_at(dreamer.iteration) == "conv2"
    assert not torch.equal(frames[0], frames[1])
    with pytest.raises(PredvisError):
        LayerSchedule([], 3)


def test_dream_video_blends_previous_frame(model):
    dreamer = Dreamer(model, ["conv2"])
    frames = [noise(24, seed=i) for i in range(3)]
    out = list(dream_video(dreamer, frames, O.layer("conv2"), Recipe(octaves=1, steps=2), torch.Generator(),
                           blend=0.5))
    assert len(out) == 3 and out[2].shape == frames[2].shape
    with pytest.raises(PredvisError):
        list(dream_video(dreamer, frames, O.layer("conv2"), Recipe(), torch.Generator(), blend=1.0))


# --- sources -----------------------------------------------------------------------------------

def test_images(tmp_path):
    cam = S.load_image("camera", 3, 64)
    assert cam.shape == (1, 3, 64, 64) and torch.equal(cam[:, 0], cam[:, 2])
    coffee = S.load_image("coffee", 1, 60)
    assert coffee.shape == (1, 1, 40, 60) and 0 <= coffee.min() and coffee.max() <= 1
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(PredvisError, match="cannot read image"):
        S.load_image(str(bad), 1, 32)
    with pytest.raises(PredvisError, match="not a file"):
        S.load_image(str(tmp_path / "missing.png"), 1, 32)


def test_weights_file(tmp_path, model):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": model.state_dict()}, good)
    src = S.model_source("predvis.backends.classifier.model:DigitClassifier", str(good))
    assert torch.equal(src.module.conv1.weight, model.conv1.weight)
    assert src.in_channels == 1 and src.module.training is False
    other = tmp_path / "other.pt"
    torch.save(DigitClassifier(widths=(8, 16, 32)).state_dict(), other)
    with pytest.raises(PredvisError, match="does not match the model: .*wrong shape"):
        S.model_source("predvis.backends.classifier.model:DigitClassifier", str(other))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00junk")
    with pytest.raises(PredvisError, match="cannot read weights"):
        S.load_weights(model, junk)


def test_import_spec_errors():
    with pytest.raises(PredvisError, match="package.module:attr"):
        S.model_source("predvis.backends.classifier.model")
    with pytest.raises(PredvisError, match="cannot import"):
        S.model_source("no_such_module_xyz:Net")
    with pytest.raises(PredvisError, match="no attribute"):
        S.model_source("predvis.backends.classifier.model:Nope")
    src = S.model_source("torch.nn:Identity")
    assert isinstance(src.module, nn.Identity) and src.default_layer == "output"


def test_torchvision_is_optional():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(PredvisError, match="needs torchvision"):
            S.model_source("torchvision:googlenet")
    else:
        src = S.model_source("torchvision:googlenet")
        assert src.default_layer == "inception4c" and src.mean == S.IMAGENET_MEAN


def test_dream_works_inside_no_grad(model):
    with torch.no_grad():
        _, h = run(model, "conv2", Recipe(octaves=1, steps=4, jitter=0, step_size=0.02))
    assert h[-1] > h[0]


def test_torchvision_googlenet_from_a_local_weights_file(tmp_path):
    """Runs where torchvision is installed (the optional 'vision' extra); skipped elsewhere."""
    tvm = pytest.importorskip("torchvision.models")
    net = tvm.googlenet(weights=None, aux_logits=False, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "g.pth")
    src = S.model_source("torchvision:googlenet", str(tmp_path / "g.pth"))
    assert src.default_layer == "inception4c" and src.mean == S.IMAGENET_MEAN
    fired = []
    src.module.inception4d.register_forward_hook(lambda *a: fired.append(1))
    dreamer = Dreamer(src.module, ["inception4c"], src.mean, src.std)
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    history: list[float] = []
    dreamer.dream(x, O.layer("inception4c"), Recipe(octaves=1, steps=3, jitter=0), torch.Generator(), history=history)
    assert history[-1] > history[0] and not fired  # the forward stops at the hooked layer
    torch.save(tvm.resnet18(weights=None).state_dict(), tmp_path / "r.pth")
    with pytest.raises(PredvisError, match="does not match the model"):
        S.model_source("torchvision:googlenet", str(tmp_path / "r.pth"))
    with pytest.raises(PredvisError, match="did you mean googlenet"):
        S.model_source("torchvision:googlnet")
