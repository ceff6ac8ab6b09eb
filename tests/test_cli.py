"""CLI smoke tests and every bad input of issue 3: one line, non-zero exit, nothing written."""
import pytest
import torch

from predvis.cli import main

SMOKE = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    code = main(["train", "gopc1", "--profile", "smoke", "--out", str(root), *SMOKE])
    assert code == 0
    return root, next((root / "gopc1").iterdir())


def test_train_smoke_prints_run_dir_last(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "vae1", "--profile", "smoke", "--out", tmp_path, *SMOKE)
    assert code == 0
    run = out.strip().splitlines()[-1]
    assert run.startswith(str(tmp_path / "vae1"))
    for name in ("config.yaml", "overrides.yaml", "cmd.txt", "env.json", "metrics/train.csv",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (tmp_path / "vae1" / run.split("/")[-1] / name).exists(), name


def test_dry_run_prints_params_and_writes_nothing(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "gopc1", "--profile", "full", "--dry-run", "--out", tmp_path)
    assert code == 0 and "params: 3540465" in out and "lr: 0.001" in out
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_predict_smoke_writes_tables_gifs(trained, capsys):
    root, run = trained
    code, out, _ = run_cli(capsys, "predict", run)
    assert code == 0
    target = run / "predict" / out.strip().splitlines()[-1].split("/")[-1]
    recon = (target / "tables" / "recon.md").read_text()
    prior = (target / "tables" / "prior.md").read_text()
    assert "copy last frame (baseline)" in prior and "thesis MSE" in recon
    assert (target / "gifs" / "sample00.gif").exists() and (target / "frames" / "sample00.png").exists()
    assert "predictor" in (target / "metrics" / "eval.csv").read_text().splitlines()[0]
    code, out2, _ = run_cli(capsys, "predict", run)
    assert out2 != out  # a second call gets a new folder


@pytest.mark.parametrize("args, pattern", [
    (["train", "gopc9", "--profile", "smoke"], r"unknown experiment 'gopc9'.*gopc1"),
    (["train", "gopc1", "--profile", "smoke", "train.epocs=2"], r"unknown key 'train.epocs'.*'epochs'"),
    (["train", "gopc1", "--profile", "smoke", "train.epochs=two"], r"train.epochs: must be an integer"),
    (["train", "gopc1", "--profile", "smoke", "train.epochs=0"], r"train.epochs: must be > 0"),
    (["train", "gopc1", "--profile", "smoke", "data.mnist=/no/such/dir"], r"MNIST path not found: /no/such/dir"),
    (["train", "gopc1", "--profile", "smoke", "device=cuda:7"], r"device: 'cuda:7'"),
    (["predict", "/no/such/run"], r"run not found: /no/such/run"),
])
@pytest.mark.bad_input("refused")
def test_bad_inputs(tmp_path, capsys, args, pattern):
    if "device=cuda:7" in args and torch.cuda.device_count() > 7:
        pytest.skip("machine has 8 GPUs")
    code, _, err = run_cli(capsys, *args, *(["--out", tmp_path] if args[0] == "train" else []))
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "gopc1").exists() or not any((tmp_path / "gopc1").iterdir())


@pytest.mark.bad_input("refused")
def test_corrupt_idx_folder(tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 7)
    code, _, err = run_cli(capsys, "train", "gopc1", "--profile", "smoke", f"data.mnist={folder}", "--out", tmp_path / "runs")
    assert_one_line_error(code, err, r"corrupt idx file .*train-images-idx3-ubyte: truncated header")
    assert not (tmp_path / "runs").exists()


@pytest.mark.bad_input("refused")
def test_malformed_yaml_file(tmp_path, capsys):
    bad = tmp_path / "exp.yaml"
    bad.write_text("name: x\nmethod: gopc\ntrain: {epochs: [1\n")
    code, _, err = run_cli(capsys, "train", bad, "--out", tmp_path / "runs")
    assert_one_line_error(code, err, r"exp.yaml: malformed YAML at line")
    assert not (tmp_path / "runs").exists()


@pytest.mark.bad_input("refused")
def test_truncated_checkpoint_on_predict(trained, capsys, tmp_path):
    import shutil

    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("predict"))
    for name in ("best.pt", "last.pt"):
        path = copy / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "predict", copy)
    assert_one_line_error(code, err, r"unreadable or truncated")
    assert not (copy / "predict").exists()


@pytest.mark.bad_input("refused")
def test_predict_on_a_classifier_run_is_one_clear_line(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "classifier", "--profile", "smoke", "--out", tmp_path)
    assert code == 0
    run = out.strip().splitlines()[-1]
    assert (tmp_path / "classifier" / run.split("/")[-1] / "tables" / "accuracy.md").exists()
    code, _, err = run_cli(capsys, "predict", run)
    assert_one_line_error(code, err, r"predict needs a model that predicts frames; .* is a 'classifier' run")
