"""Experiment trackers (train.logger): each backend's own files, read back with the backend's own reader,
hold the scalars of metrics/train.csv at their steps (once each, across an interruption and a resume) and
the grids that predict wrote. Nothing here reaches the network: W&B runs offline and MLflow writes to a
SQLite file, which is what they do by default (the tests leave WANDB_MODE and MLFLOW_TRACKING_URI unset).
"""
import json
import math
import socket
import struct
import sys

import pytest
from pathlib import Path

from predvis.cli import main
from predvis.config import read_yaml
from predvis.experiment import config_from_saved, load_experiment
from predvis.errors import ConfigError
from predvis.experiment import finished_run_like
from predvis.run import read_csv
from predvis.train import loop, trackers

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4",
         "train.epochs=2"]


def needs(logger):
    """Skip, naming the extra, where ``logger``'s package is not installed (CI installs them: [dev])."""
    try:
        trackers.require(logger)
    except ConfigError as err:
        return pytest.mark.skipif(True, reason=str(err))
    return pytest.mark.skipif(False, reason="")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """The backends' defaults (no mode, URI or key from the environment), their caches in tmp_path, and a
    check that this process looked up or connected to no host but this one (W&B's own core process is
    offline by its mode)."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_DIR", "WANDB_ERROR_REPORTING",
                 "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_DISABLE_TELEMETRY"):
        monkeypatch.setenv(name, "")  # so that the delenv below restores the variable, or its absence
        monkeypatch.delenv(name)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home" / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    tried = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            tried.append(f"lookup {host}")
            raise socket.gaierror(socket.EAI_NONAME, "the tests do not use the network")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            tried.append(f"connect {address}")
            raise OSError("the tests do not use the network")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
    assert not tried, f"this process tried the network: {tried}"


def interrupted_then_resumed(tmp_path, monkeypatch, logger):
    """A 2-epoch GOPC-1 smoke run stopped at the first step of epoch 2, resumed, then predicted on."""
    from predvis.backends.gopc.method import GopcMethod
    from predvis.probes.predict import predict

    original = GopcMethod.train_step
    calls = {"n": 0}

    def stopping(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # 2 steps per epoch
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(GopcMethod, "train_step", stopping)
    with pytest.raises(KeyboardInterrupt):
        loop.train(load_experiment("gopc1", "smoke", SMOKE + [f"train.logger={logger}"]), tmp_path, {})
    monkeypatch.setattr(GopcMethod, "train_step", original)
    run = next((tmp_path / "gopc1").iterdir())
    loop.resume(run)
    out = predict(run, limit=2, figures=2)
    rows = read_csv(run / "metrics" / "train.csv")
    assert [r["step"] for r in rows] == ["2", "4"]
    expected = {int(r["step"]): {k: float(v) for k, v in r.items() if k != "step"} for r in rows}
    grids = sorted(p.stem for p in (out / "frames").glob("*.png"))
    assert grids == ["sample00", "sample01"]
    return run, expected, grids


def assert_mirrors(logged: dict, expected: dict) -> None:
    """``logged`` (key -> list of (step, value)) holds each train.csv cell once, at its row's step."""
    keys = {k for row in expected.values() for k in row}
    assert keys <= set(logged), f"missing: {keys - set(logged)}"
    for key in keys:
        points = sorted(logged[key])
        assert [s for s, _ in points] == sorted(expected), f"{key}: steps {points}"
        for step, value in points:
            want = expected[step][key]
            assert math.isclose(value, want, rel_tol=1e-5, abs_tol=1e-7) or (math.isnan(value) and math.isnan(want))


@needs("tensorboard")
def test_tensorboard_event_files_mirror_train_csv_and_grids(tmp_path, monkeypatch, offline):
    logger = "tensorboard"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, expected, grids = interrupted_then_resumed(tmp_path, monkeypatch, logger)
    files = sorted((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 3  # the first process, the resume, the predict
    logged = {}
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            logged.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
        for tag in events.Tags()["images"]:
            logged.setdefault(tag, []).extend((e.step, e) for e in events.Images(tag))
    images = {k: logged.pop(k) for k in list(logged) if k.startswith("predict/")}
    assert_mirrors(logged, expected)
    assert sorted(images) == [f"predict/{g}" for g in grids]
    for points in images.values():
        (step, image), = points
        assert step == max(expected) and image.encoded_image_string.startswith(b"\x89PNG")


def complete_wandb_records(path, timeout: float = 30.0):
    """The records of a .wandb log once its ``exit`` record is there: W&B's service writes the log
    asynchronously and may still be writing it just after ``finish()`` returns in the same process."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(path)) if path.exists() else []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def wandb_records(path):
    """The protobuf records of a W&B transaction log (.wandb): a 7-byte file header, then LevelDB-style
    chunks (crc32, length, type: full / first / middle / last) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@needs("wandb")
def test_wandb_offline_runs_mirror_train_csv_and_grids(tmp_path, monkeypatch, offline):
    logger = "wandb"
    run, expected, grids = interrupted_then_resumed(tmp_path, monkeypatch, logger)
    wandb_id = json.loads((run / "trackers.json").read_text())["wandb_id"]
    folders = sorted((run / "wandb").glob("offline-run-*"))
    assert len(folders) == 3 and all(f.name.endswith(f"-{wandb_id}") for f in folders)
    assert not list((run / "wandb").glob("run-*"))  # nothing online
    logged, images = {}, {}
    for folder in folders:
        for record in complete_wandb_records(folder / f"run-{wandb_id}.wandb"):
            if record.WhichOneof("record_type") != "history":
                continue
            items = {}
            for item in record.history.item:  # a media entry comes as one item per field (nested keys)
                *outer, last = [item.key] if item.key else list(item.nested_key)
                node = items
                for part in outer:
                    node = node.setdefault(part, {})
                node[last] = json.loads(item.value_json)
            step = items.pop("_step")
            for key, value in items.items():
                if key.startswith("predict/"):
                    images.setdefault(key, []).append((step, folder / "files" / value["path"]))
                elif not key.startswith("_"):
                    logged.setdefault(key, []).append((step, float(value)))
    assert_mirrors(logged, expected)
    assert sorted(images) == [f"predict/{g}" for g in grids]
    for points in images.values():
        (step, png), = points
        assert step == max(expected) and png.read_bytes().startswith(b"\x89PNG")


@needs("mlflow")
def test_mlflow_store_mirrors_train_csv_and_grids(tmp_path, monkeypatch, offline):
    logger = "mlflow"
    from mlflow.tracking import MlflowClient

    run, expected, grids = interrupted_then_resumed(tmp_path, monkeypatch, logger)
    client = MlflowClient(tracking_uri=f"sqlite:///{run.resolve() / 'mlflow' / 'mlflow.db'}")
    (record,) = client.search_runs([client.get_experiment_by_name("gopc1").experiment_id])
    assert record.info.run_id == json.loads((run / "trackers.json").read_text())["mlflow_run_id"]
    assert record.info.status == "FINISHED" and record.data.params["train.logger"] == "mlflow"
    keys = {k for row in expected.values() for k in row}
    logged = {k: [(m.step, m.value) for m in client.get_metric_history(record.info.run_id, k)] for k in keys}
    assert_mirrors(logged, expected)
    names = [a.path for a in client.list_artifacts(record.info.run_id, "images")]
    for g in grids:
        (png,) = [n for n in names if n.startswith(f"images/predict~{g}+step+{max(expected)}+") and n.endswith(".png")]
        local = client.download_artifacts(record.info.run_id, png, str(tmp_path / "dl"))
        assert open(local, "rb").read(4) == b"\x89PNG"
    assert str((run / "mlflow" / "artifacts").resolve()) in record.info.artifact_uri


def test_logger_is_checked_and_old_runs_load_without_it(tmp_path):
    with pytest.raises(ConfigError, match=r"train.logger: must be one of none, tensorboard, wandb, mlflow, "
                                          r"got 'tensorbord' \(did you mean 'tensorboard'\?\)"):
        load_experiment("gopc1", "smoke", ["train.logger=tensorbord"])
    run = loop.train(load_experiment("gopc1", "smoke", SMOKE[:-1] + ["train.epochs=1"]), tmp_path, {})
    saved = read_yaml(run / "config.yaml")
    assert saved["train"]["logger"] == "none" and not (run / "trackers.json").exists()
    del saved["train"]["logger"]  # a run saved before the key existed
    assert config_from_saved(saved, "old").train.logger == "none"
    # the tracker is not part of the model: a study asking for the same model with a logger reuses the run
    logged = load_experiment("gopc1", "smoke", SMOKE[:-1] + ["train.epochs=1", "train.logger=tensorboard"])
    assert finished_run_like(tmp_path, "gopc1", logged.to_dict()) == run


def test_missing_extra_is_one_line_before_any_run_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an environment without the extra looks like
    code = main(["train", "gopc1", "--profile", "smoke", "--out", str(tmp_path), *SMOKE, "train.logger=wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "error: train.logger=wandb needs the 'wandb' package, which is not installed: "
        "pip install 'predvis[wandb]' (or set train.logger=none)"]
    assert not (tmp_path / "gopc1").exists()
    # predict on a run whose logger is missing now: one warning, the results written all the same
    run = loop.train(load_experiment("gopc1", "smoke", SMOKE[:-1] + ["train.epochs=1"]), tmp_path, {})
    saved = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(saved.replace("logger: none", "logger: wandb"))
    capsys.readouterr()
    assert main(["predict", str(run), "limit=2", "figures=1"]) == 0
    out, err = capsys.readouterr()
    assert "warning: prediction grids not logged: train.logger=wandb needs the 'wandb' package" in err
    assert list((run / "predict").glob("*/frames/sample00.png")) and not (run / "wandb").exists()


GUARD = r'''
import atexit, os, socket, sys
tried = []
real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

def getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        tried.append(f"lookup {host}")
        raise socket.gaierror(socket.EAI_NONAME, "no network here")
    return real_getaddrinfo(host, *args, **kwargs)

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
        tried.append(f"connect {address}")
        raise OSError("no network here")
    return real_connect(self, address)

socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect

def verdict():  # registered first, so it runs after every library's own exit handlers
    sys.stdout.flush()
    if tried:
        sys.stderr.write(f"tried the network: {tried}\n")
        os._exit(9)

atexit.register(verdict)
import numpy as np
from pathlib import Path
from predvis.experiment import load_experiment
from predvis.train.trackers import open_tracker
for logger in sys.argv[2:]:
    cfg = load_experiment("gopc1", "smoke", [f"train.logger={logger}"])
    run = Path(sys.argv[1]) / logger
    run.mkdir()
    tracker = open_tracker(cfg, run)
    tracker.log_scalars(1, {"epoch": 1, "step": 1, "loss": 0.5})
    tracker.log_image("predict/sample00", np.zeros((8, 8)), 1)
    tracker.close()
print("logged", *sys.argv[2:])
'''


@pytest.mark.slow
def test_trackers_stay_on_this_machine_for_the_whole_process(tmp_path, offline):
    """Open, log and close each installed backend with its defaults in a fresh process that fails if any
    code looks up or connects to a host, up to and including the exit handlers."""
    import os
    import subprocess

    loggers = [name for name in ("tensorboard", "wandb", "mlflow") if not needs(name).args[0]]
    if not loggers:
        pytest.skip("no tracker package is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_MODE", "MLFLOW_", "WANDB_ERROR"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", GUARD, str(tmp_path), *loggers], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "logged " + " ".join(loggers)


@pytest.mark.slow
@needs("tensorboard")
def test_under_torchrun_only_rank_0_logs(tmp_path):
    """2 gloo processes: one event file, holding each train.csv row once."""
    import os
    import subprocess

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "predvis",
         "train", "gopc1", "--profile", "smoke", "--out", str(tmp_path), "data.train_sequences=16",
         "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=8", "train.epochs=2",
         "train.threads=1", "train.logger=tensorboard"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "gopc1").iterdir()
    (events,) = (run / "tensorboard").glob("events.out.tfevents.*")
    reader = EventAccumulator(str(events), size_guidance={"scalars": 0})
    reader.Reload()
    logged = {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}
    rows = read_csv(run / "metrics" / "train.csv")
    assert_mirrors(logged, {int(r["step"]): {k: float(v) for k, v in r.items() if k != "step"} for r in rows})
