import math

import pytest
import torch
from skimage.metrics import structural_similarity

from predvis.metrics import mse_per_pixel, psnr, sse_per_frame, ssim


def test_mse_sse_psnr_hand_values():
    target = torch.zeros(1, 1, 1, 2, 2)
    pred = torch.tensor([0.5, 0.0, 0.0, 0.5]).view(1, 1, 1, 2, 2)
    assert mse_per_pixel(pred, target).item() == pytest.approx(0.125)      # (0.25 + 0.25) / 4
    assert sse_per_frame(pred, target).item() == pytest.approx(0.5)
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(1 / 0.125))
    assert psnr(target, target).item() == 100.0                              # capped


def test_psnr_clips_predictions():
    target = torch.ones(1, 1, 1, 4, 4)
    assert psnr(torch.full_like(target, 3.0), target).item() == 100.0


def test_ssim_matches_scikit_image():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 1, 16, 20, generator=g)
    b = (a + 0.3 * torch.rand(a.shape, generator=g)).clamp(0, 1)
    ours = ssim(b, a)
    for i in range(2):
        for t in range(3):
            ref = structural_similarity(b[i, t, 0].numpy(), a[i, t, 0].numpy(), data_range=1.0)
            assert ours[i, t].item() == pytest.approx(ref, abs=1e-5)
    assert ssim(a, a).min().item() == pytest.approx(1.0, abs=1e-6)
