"""Bad values stop before anything is written: non-finite numbers, out-of-range keys, non-UTF-8 files,
paths and values (exit 2, one ``error:`` line naming the culprit, no run directory); ``--resume --dry-run``
leaves the run byte-identical."""
import os
import re

import pytest
import yaml

from predvis.cli import main


def run_cli(capsys, *args):
    code = main([str(a) if not isinstance(a, str) else a for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, err, pattern, out_dir):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.rglob("*"))


NON_FINITE = [
    ("gopc1", "train.lr=inf", r"train\.lr: must be a finite number, got 'inf'"),
    ("gopc1", "train.lr=.inf", r"train\.lr: must be a finite number, got inf"),
    ("gopc1", "train.lr=-.inf", r"train\.lr: must be a finite number"),
    ("gopc1", "train.lr=1e400", r"train\.lr: must be a finite number, got '1e400'"),
    ("gopc1", "train.lr=nan", r"train\.lr: must be a finite number, got 'nan'"),
    ("gopc1", "train.lr=.nan", r"train\.lr: must be a finite number, got nan"),
    ("gopc1", "model.init_logvar=.nan", r"model\.init_logvar: must be a finite number"),
    ("gopc1", "train.weight_decay=1e999", r"train\.weight_decay: must be a finite number"),
    ("classifier", "model.mean=.inf", r"model\.mean: must be a finite number"),
    ("gopc1", f"train.lr={10**400}", r"train\.lr: must be a finite number"),  # an int beyond float range
]

OUT_OF_RANGE = [
    ("gopc1", "seed=-1", r"seed: must be an integer in \[0, 2\*\*32\), got -1"),
    ("gopc1", f"seed={2**32}", r"seed: must be an integer in \[0, 2\*\*32\), got 4294967296"),
    ("gopc1", "seed=1e30", r"seed: must be an integer"),
    ("gopc1", "data.split_seed=-3", r"data\.split_seed: must be an integer in \[0, 2\*\*32\)"),
    ("gopc1", "data.test_seed=-1", r"data\.test_seed: must be an integer in \[0, 2\*\*32\)"),
    ("gopc1", "train.lr=0", r"train\.lr: must be > 0"),
    ("gopc1", "train.lr=-1e-3", r"train\.lr: must be > 0"),
    ("gopc1", "train.epochs=0", r"train\.epochs: must be > 0"),
    ("gopc1", "train.batch_size=-4", r"train\.batch_size: must be > 0"),
    ("pvm", "train.steps=0", r"train\.steps: must be >= 1"),
    ("pvm", "model.lateral_radius=-1", r"model\.lateral_radius: must be >= 0"),
    ("pvm", "model.lr_initial=0", r"model\.lr_initial / lr_final"),
    ("pvm", "eval.sequences=-1", r"eval\.sequences: must be >= 0"),
    ("depth_inversion", "data.threshold=300", r"data\.threshold: must be in \[0, 255\)"),
    ("depth_inversion", "data.x_range=0.9", r"data\.x_range / y_range: must lie in \[0, 0\.5\]"),
]


@pytest.mark.bad_input("refused")
@pytest.mark.parametrize("experiment, override, pattern", NON_FINITE + OUT_OF_RANGE)
def test_bad_value_is_one_line_and_writes_nothing(tmp_path, capsys, experiment, override, pattern):
    out = tmp_path / "runs"
    code, _, err = run_cli(capsys, "train", experiment, "--profile", "smoke", "--dry-run", override, "--out", out)
    assert_refused(code, err, pattern, out)
    # and the same without --dry-run: still nothing on disk
    code, _, err = run_cli(capsys, "train", experiment, "--profile", "smoke", override, "--out", out)
    assert_refused(code, err, pattern, out)


@pytest.mark.bad_input("refused")
def test_non_finite_number_in_a_yaml_file(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: x\nmethod: gopc\ntrain: {lr: .inf}\n")
    code, _, err = run_cli(capsys, "train", exp, "--profile", "smoke", "--out", tmp_path / "runs")
    assert_refused(code, err, r"train\.lr: must be a finite number, got inf", tmp_path / "runs")


@pytest.mark.bad_input("refused")
def test_non_utf8_bytes_in_a_yaml_file(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_bytes(b"name: x\nmethod: gopc  # caf\xe9 in Latin-1\n")
    code, _, err = run_cli(capsys, "train", exp, "--profile", "smoke", "--out", tmp_path / "runs")
    assert_refused(code, err, r"exp\.yaml: not UTF-8 text \(byte 0xe9 on line 2\)", tmp_path / "runs")


@pytest.mark.bad_input("refused")
@pytest.mark.parametrize("where", ["experiment", "out", "override"])
def test_non_utf8_bytes_in_an_argument(tmp_path, capsys, where):
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")  # how Python hands such bytes over
    args = {"experiment": ["train", bad + ".yaml", "--out", tmp_path / "runs"],
            "out": ["train", "gopc1", "--profile", "smoke", "--out", bad],
            "override": ["train", "gopc1", "--profile", "smoke", f"data.mnist={bad}", "--out", tmp_path / "runs"]}
    code, _, err = run_cli(capsys, *args[where])
    assert_refused(code, err, r"argument '.*caf\\xe9.*' is not valid UTF-8", tmp_path / "runs")
    assert not os.path.exists(os.fsencode(str(tmp_path)) + b"/caf\xe9")


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.bad_input("accepted")
def test_resume_dry_run_leaves_the_run_byte_identical(tmp_path, capsys, smoke_args):
    code, out, _ = run_cli(capsys, "train", "gopc1", "--profile", "smoke", "--out", tmp_path, *smoke_args)
    assert code == 0
    run = tmp_path / "gopc1" / out.strip().splitlines()[-1].split("/")[-1]
    # one more epoch to go, so a real resume would train and write
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"]["epochs"] += 1
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = _snapshot(run)
    code, out, err = run_cli(capsys, "train", "gopc1", "--resume", run, "--dry-run", "--force")
    assert code == 0, err
    assert "params:" in out and "would resume" in err
    assert _snapshot(run) == before
    assert sorted(p.name for p in (tmp_path / "gopc1").iterdir()) == [run.name]


@pytest.mark.bad_input("accepted")
def test_largest_seed_trains(tmp_path, capsys):
    """The top of the seed range survives the methods' derived seeds (PVM: seed * 1,000,003 + episode)."""
    code, out, err = run_cli(capsys, "train", "pvm", "--profile", "smoke", f"seed={2**32 - 1}", "--out", tmp_path)
    assert code == 0, err
    assert (tmp_path / "pvm" / out.strip().splitlines()[-1].split("/")[-1] / "checkpoints" / "last.pt").exists()
