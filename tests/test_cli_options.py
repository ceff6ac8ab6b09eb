"""Top-level command-line options (--version, -h everywhere, shell completion) and file permissions that
follow the umask."""
import os
import stat

import pytest
import typer

import predvis
from predvis.cli import app, main
from predvis.run import atomic_torch_save, atomic_write_text, create_run_dir, current_umask


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"predvis {predvis.__version__}"


def _commands():
    return sorted(typer.main.get_command(app).commands)


def test_every_command_is_listed():
    assert {"train", "predict", "dream", "lesion", "occlude", "sleep", "deepdream", "compare"} <= set(_commands())


@pytest.mark.parametrize("command", [None, *_commands()])
def test_dash_h_is_help_on_every_command(command, capsys):
    args = [] if command is None else [command]
    assert main([*args, "-h"]) == 0
    short = capsys.readouterr().out
    assert main([*args, "--help"]) == 0
    assert "Usage:" in short and short == capsys.readouterr().out


def test_shell_completion_is_offered(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--install-completion" in out and "--show-completion" in out


@pytest.fixture
def umask():
    before = os.umask(0o022)
    os.umask(before)

    def set_mask(mask):
        os.umask(mask)
        assert current_umask() == mask

    yield set_mask
    os.umask(before)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                       (0o002, 0o664, 0o775)])
def test_written_files_and_run_dirs_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_torch_save(tmp_path / "b.pt", {"x": 1})
    assert mode(tmp_path / "a.txt") == file_mode and mode(tmp_path / "b.pt") == file_mode
    run = create_run_dir(tmp_path / "runs", "exp", {"config.yaml": "a: 1\n"})
    assert mode(run.path) == dir_mode
    assert mode(run.path / "checkpoints") == dir_mode
    assert mode(run.path / "config.yaml") == file_mode


def test_digit_cache_follows_the_umask(tmp_path, umask, monkeypatch):
    import numpy as np

    from predvis.data.mnist import load_csv_cached

    source = tmp_path / "d.csv"
    source.write_text(",".join(["0"] * 784 + ["3"]) + "\n")
    umask(0o022)
    load_csv_cached(source, tmp_path / "cache" / "d.npz")
    assert mode(tmp_path / "cache" / "d.npz") == 0o644 and mode(tmp_path / "cache") == 0o755
    assert np.array_equal(load_csv_cached(source, tmp_path / "cache" / "d.npz").labels, [3])
