"""Training options: channels-last layout, bf16 autocast, pinned memory, torch.compile's refusal."""
from __future__ import annotations

import pytest
import torch

from predvis.cli import main
from predvis.experiment import load_experiment
from predvis.errors import ConfigError
from predvis.backends.registry import get_method
from predvis.checkpoint import load_checkpoint


def _method(exp: str, *overrides: str):
    cfg = load_experiment(exp, "smoke", list(overrides))
    torch.manual_seed(0)  # the same initial weights
    return get_method(cfg.method)(cfg, torch.device("cpu"))


def test_channels_last_batches_and_weights_and_same_first_step(one_thread):
    """NHWC is a memory layout only: the first training step gives the same loss either way."""
    plain = _method("classifier")
    nhwc = _method("classifier", "train.channels_last=true")
    assert nhwc.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    a, b = next(iter(plain.train_batches(0))), next(iter(nhwc.train_batches(0)))
    assert b[0].is_contiguous(memory_format=torch.channels_last) and torch.equal(a[0], b[0])
    torch.manual_seed(1)
    la = plain.train_step(a)["loss"]
    torch.manual_seed(1)
    lb = nhwc.train_step(b)["loss"]
    assert torch.allclose(la, lb, rtol=1e-5)


@pytest.mark.parametrize("exp,extra", [
    ("classifier", []),
    ("depth_inversion", ["data.train_scenes=16", "data.val_scenes=8", "data.test_scenes=8", "eval.figures=1"]),
])
def test_bf16_and_channels_last_train_end_to_end(tmp_path, capsys, exp, extra, one_thread):
    args = ["train", exp, "--profile", "smoke", "--out", str(tmp_path), "train.amp=bf16",
            "train.channels_last=true", "train.pin_memory=true", *extra]
    assert main(args) == 0
    run = next((tmp_path / exp).iterdir())
    weights = load_checkpoint(run / "checkpoints" / "last.pt")["modules"]
    assert all(torch.isfinite(v).all() for m in weights.values() for v in m.values() if v.is_floating_point())


def test_compile_refused_for_gopc_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="cannot be compiled"):
        _method("gopc1", "train.compile=true")
    assert main(["train", "gopc1", "--profile", "smoke", "--out", str(tmp_path), "train.compile=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: train.compile") and "\n" not in err and not (tmp_path / "gopc1").exists()
