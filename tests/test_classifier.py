"""The small digit classifier: shapes at any size, hookable names, normalisation inside."""
from __future__ import annotations

import pytest
import torch

from predvis.models.classifier import DigitClassifier


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
