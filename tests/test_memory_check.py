"""Sizes whose tensors cannot fit are refused before anything is built or written, also under --dry-run,
with the estimate stated; --dry-run prints the estimate of a run that fits."""
import re

import pytest

from predvis import memory
from predvis.backends.registry import get_method
from predvis.cli import main
from predvis.experiment import load_experiment
from predvis.errors import ConfigError


def test_gopc_data_estimate_is_the_sequence_tensors():
    cfg = load_experiment("gopc1", "smoke", ["data.val_sequences=10", "data.test_sequences=30", "train.batch_size=4"])
    frame = cfg.data.frames * cfg.data.size ** 2 * 4
    assert [n for _, n in get_method(cfg.method).data_memory(cfg)] == [10 * frame, 30 * frame, 4 * frame]


def test_pvm_data_estimate_counts_training_and_held_out_frames():
    cfg = load_experiment("pvm", "smoke", ["data.videos=3", "data.frames=100", "data.test_videos=2", "data.test_frames=50"])
    side = cfg.model.layers[0] * cfg.model.patch
    frame = cfg.model.channels * side * side * 4
    assert sum(n for _, n in get_method(cfg.method).data_memory(cfg)) == (3 * 100 + 2 * 50) * frame


def test_check_fits_states_the_estimate_and_the_machine():
    items = [("a", 3 * memory.GIB), ("b", memory.GIB)]
    memory.check_fits(items, available=5 * memory.GIB)
    with pytest.raises(ConfigError, match=r"needs ~4 GiB \(a 3 GiB, b 1 GiB\), this machine has 2 GiB available"):
        memory.check_fits(items, available=2 * memory.GIB)


def test_available_memory_is_read():
    assert memory.available_bytes() > 0


@pytest.mark.parametrize("argv", [
    ["train", "vae1", "--profile", "smoke", "data.val_sequences=100000000"],
    ["train", "gopc1", "--profile", "smoke", "data.test_sequences=100000000", "--dry-run"],
    ["train", "pvm", "--profile", "smoke", "data.frames=2000000000"],
    ["train", "depth_inversion", "--profile", "smoke", "data.train_scenes=2000000000", "--dry-run"],
])
@pytest.mark.bad_input("refused")
def test_sizes_that_cannot_fit_are_refused_before_work(tmp_path, capsys, argv):
    code = main([*argv, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.match(r"error: this run needs ~[\d,.]+ GiB \(.*\), this machine has [\d.,]+ GiB available", lines[0])
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_estimate(tmp_path, capsys):
    assert main(["train", "gopc1", "--profile", "smoke", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^memory: ~[\d.]+ MiB \(.*model state .* of [\d.]+ GiB available$", out, re.M), out
