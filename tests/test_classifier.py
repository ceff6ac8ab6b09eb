"""The small digit classifier: shapes at any size, hookable names, normalisation inside."""
from __future__ import annotations

import pytest
import torch

from predvis.backends.classifier.model import DigitClassifier


@pytest.mark.parametrize("size", [28, 64, 13])
def test_logits_shape_at_any_size(size):
    model = DigitClassifier().eval()
    assert model(torch.rand(2, 1, size, size)).shape == (2, 10)


def test_named_layers_and_widths():
    model = DigitClassifier(in_channels=3, classes=7, widths=(4, 8, 12))
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "pool3", "fc"]
    assert model(torch.rand(1, 3, 28, 28)).shape == (1, 7)
    assert sum(p.numel() for p in model.parameters()) == (
        4 * 27 + 4 + 8 * 36 + 8 + 12 * 72 + 12 + 7 * 12 * 9 + 7)
    with pytest.raises(ValueError):
        DigitClassifier(widths=(4, 8))


def test_input_normalisation_is_inside():
    torch.manual_seed(0)
    a = DigitClassifier(mean=0.0, std=1.0).eval()
    b = DigitClassifier(mean=0.5, std=2.0).eval()
    b.load_state_dict(a.state_dict() | {"mean": b.mean, "std": b.std})
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(a((x - 0.5) / 2.0), b(x), atol=1e-6)
    assert "mean" in a.state_dict() and float(b.state_dict()["std"]) == 2.0


def test_method_reads_a_labelled_image_folder(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from predvis.experiment import load_experiment
    from predvis.backends.classifier.method import ClassifierMethod

    rng = np.random.default_rng(0)
    for name, value in (("cats", 40), ("dogs", 220)):
        (tmp_path / name).mkdir()
        for i in range(10):
            iio.imwrite(tmp_path / name / f"{i}.png", np.full((20, 24, 3), value, np.uint8)
                        + rng.integers(0, 20, (20, 24, 3), dtype=np.uint8))
    cfg = load_experiment("classifier", "smoke", [f"data.source={tmp_path}", "data.size=16", "data.limit=0"])
    method = ClassifierMethod(cfg, torch.device("cpu"))
    assert method.class_names == ["cats", "dogs"]
    x, y = method.labelled_test_images()
    assert x.shape[1:] == (1, 16, 16) and set(y.tolist()) == {0, 1}
    assert len(method.train_set) + len(method.val_set) + len(method.test_set) == 20
    assert method.model.fc.out_features == 2
    batch = next(iter(method.train_batches(0)))
    assert set(method.train_step(batch)) == {"loss", "acc"}
    assert {"val_acc", "test_acc"} <= set(method.validate())
    assert "| test |" in method.final_tables()["accuracy.md"]


def test_method_rejects_bad_sources(tmp_path):
    from predvis.experiment import load_experiment
    from predvis.errors import PredvisError
    from predvis.backends.classifier.method import ClassifierMethod

    (tmp_path / "only").mkdir()
    cfg = load_experiment("classifier", "smoke", [f"data.source={tmp_path}"])
    with pytest.raises(PredvisError, match="at least two class"):
        ClassifierMethod(cfg, torch.device("cpu"))
    with pytest.raises(PredvisError, match="widths"):
        load_experiment("classifier", "smoke", ["model.widths=[4,8]"])
