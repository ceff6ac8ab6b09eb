"""Optional experiment trackers: TensorBoard, Weights & Biases, MLflow (``train.logger``).

A tracker mirrors the numeric columns of ``metrics/train.csv`` (one point per epoch, at the row's
global ``step``) and the prediction grids that ``predvis predict`` writes. Everything stays inside the
run directory unless the user points the backend elsewhere through its own environment variable:

    tensorboard  RUN/tensorboard/      event files
    wandb        RUN/wandb/            offline runs (``WANDB_MODE``, when set, decides instead)
    mlflow       RUN/mlflow/mlflow.db  SQLite store, images under RUN/mlflow/artifacts/
                                       (``MLFLOW_TRACKING_URI``, when set, decides instead)

``RUN/trackers.json`` keeps the W&B run id and the MLflow run id, so a resumed run and a later
``predvis predict`` log into the same tracker run. The backends are imported only when chosen, so
predvis works without them; a missing one is a one-line error naming its pip extra.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from predvis.config import flat_config
from predvis.errors import ConfigError, RunError
from predvis.run import atomic_write_json, read_csv

LOGGERS = ("none", "tensorboard", "wandb", "mlflow")
STATE_FILE = "trackers.json"
# modules each backend needs here; the MLflow SQLite store also needs SQLAlchemy and Alembic
_MODULES = {"tensorboard": ("tensorboard",), "wandb": ("wandb",), "mlflow": ("mlflow", "sqlalchemy", "alembic")}
_MLFLOW_STATUS = {"done": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_WANDB_EXIT = {"done": 0, "failed": 1, "interrupted": 255}


def require(logger: str) -> None:
    """Raise a one-line error when ``logger``'s package is not installed (before any work is done)."""
    missing = [m for m in _MODULES.get(logger, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"train.logger={logger} needs the '{missing[0]}' package, which is not installed: "
            f"pip install 'predvis[{logger}]' (or set train.logger=none)"
        )


class Tracker:
    """The interface, and the ``none`` logger itself: every call does nothing."""

    def log_scalars(self, step: int, values: Mapping[str, Any]) -> None:
        """Log the numeric entries of ``values`` (e.g. one train.csv row) at global ``step``."""

    def log_image(self, tag: str, image: Path | np.ndarray, step: int) -> None:
        """Log an image (a PNG path, or an (H, W) / (H, W, 3|4) uint8 or [0, 1] float array)."""

    def close(self, status: str = "done") -> None:
        """Flush and finish; ``status`` is done, failed (diverged, or an error) or interrupted."""


def scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a train.csv row as floats, without ``step`` (the x axis itself)."""
    out = {}
    for key, value in values.items():
        if key == "step" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float, np.integer, np.floating)):
            out[key] = float(value)
        elif isinstance(value, str):
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def image_array(image: Path | np.ndarray) -> np.ndarray:
    """``image`` as a uint8 (H, W) or (H, W, C) array."""
    if isinstance(image, (str, Path)):
        import imageio.v3 as iio

        image = iio.imread(Path(image))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"an image must be (H, W) or (H, W, C), got shape {array.shape}")
    return array


# --------------------------------------------------------------------------- backends

class TensorBoardTracker(Tracker):
    """Event files in ``RUN/tensorboard/``; a resumed run adds a new event file to the same folder."""

    def __init__(self, run: Path, cfg: Any, state: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run) / "tensorboard"))

    def log_scalars(self, step: int, values: Mapping[str, Any]) -> None:
        for key, value in scalars(values).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_image(self, tag: str, image: Path | np.ndarray, step: int) -> None:
        array = image_array(image)
        self.writer.add_image(tag, array, step, dataformats="HW" if array.ndim == 2 else "HWC")
        self.writer.flush()

    def close(self, status: str = "done") -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A W&B run under ``RUN/wandb/``, offline unless the user set ``WANDB_MODE``.

    Each process that logs (training, a resume, a predict) writes one ``offline-run-*`` folder with the
    same run id; ``wandb sync RUN/wandb/offline-run-*`` uploads them as one run.
    """

    def __init__(self, run: Path, cfg: Any, state: dict):
        os.environ.setdefault("WANDB_SILENT", "true")
        if not os.environ.get("WANDB_MODE"):
            # offline for the whole process, before wandb is imported: wandb decides on its own usage
            # telemetry and error reports from its process-wide settings, not from wandb.init(mode=...)
            os.environ["WANDB_MODE"] = "offline"
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        if not state.get("wandb_id"):
            state["wandb_id"] = secrets.token_hex(4)
        self.run = wandb.init(
            dir=str(run), id=state["wandb_id"], resume="allow",
            project=None if os.environ.get("WANDB_PROJECT") else "predvis",
            group=cfg.name, name=f"{cfg.name}/{Path(run).name}", job_type="train", config=cfg.to_dict(),
            settings=wandb.Settings(console="off"),
        )

    def log_scalars(self, step: int, values: Mapping[str, Any]) -> None:
        self.run.log(scalars(values), step=step)

    def log_image(self, tag: str, image: Path | np.ndarray, step: int) -> None:
        import wandb

        self.run.log({tag: wandb.Image(image_array(image))}, step=step)

    def close(self, status: str = "done") -> None:
        self.run.finish(exit_code=_WANDB_EXIT.get(status, 1))


class MlflowTracker(Tracker):
    """An MLflow run in ``RUN/mlflow/mlflow.db`` (SQLite), or in ``MLFLOW_TRACKING_URI`` when set.

    The experiment is the predvis experiment name; the run is named after the run directory, tagged with
    its path, and holds the flattened config as parameters. MLflow's usage telemetry is off unless the
    user set ``MLFLOW_DISABLE_TELEMETRY`` themselves.
    """

    def __init__(self, run: Path, cfg: Any, state: dict):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import logging

        from mlflow.tracking import MlflowClient

        if "mlflow_tracking_uri" not in state:  # fixed when the run starts: resume and predict log there too
            state["mlflow_tracking_uri"] = os.environ.get("MLFLOW_TRACKING_URI") or None
        uri = state["mlflow_tracking_uri"]
        local = uri is None
        if local:  # the run's own store, found again even if the run directory moved
            store = Path(run).resolve() / "mlflow"
            store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{store / 'mlflow.db'}"
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "creating tables"
            logging.getLogger("alembic").setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=uri)
        if state.get("mlflow_run_id"):
            self.run_id = state["mlflow_run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(cfg.name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            artifacts = (store / "artifacts").as_uri() if local else None
            experiment_id = self.client.create_experiment(cfg.name, artifact_location=artifacts)
        self.run_id = self.client.create_run(
            experiment_id, run_name=Path(run).name,
            tags={"predvis.run_dir": str(Path(run).resolve()), "predvis.method": cfg.method},
        ).info.run_id
        state["mlflow_run_id"] = self.run_id
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in flat_config(cfg.to_dict()).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log_scalars(self, step: int, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, step) for k, v in scalars(values).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, tag: str, image: Path | np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image_array(image), key=tag, step=step)

    def close(self, status: str = "done") -> None:
        self.client.set_terminated(self.run_id, status=_MLFLOW_STATUS.get(status, "FAILED"))


BACKENDS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


# --------------------------------------------------------------------------- opening

def logger_of(cfg: Any) -> str:
    """The configured logger (runs saved before ``train.logger`` existed have none)."""
    return getattr(cfg.train, "logger", "none")


def open_tracker(cfg: Any, run: Path) -> Tracker:
    """The run's tracker (a new tracker run, or the one recorded in ``RUN/trackers.json``)."""
    logger = logger_of(cfg)
    if logger == "none":
        return Tracker()
    require(logger)
    path = Path(run) / STATE_FILE
    state = _read_state(path)
    before = dict(state)
    try:
        tracker = BACKENDS[logger](Path(run), cfg, state)
    except Exception as err:  # the backend's own failure (bad URI, unreachable server ...): one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RunError(f"train.logger={logger}: could not start the tracker: {first[:300]}") from None
    if state != before:
        atomic_write_json(path, state)
    return tracker


def _read_state(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_step(run: Path) -> int:
    """The global step of the last row of ``metrics/train.csv`` (0 without one)."""
    rows = read_csv(Path(run) / "metrics" / "train.csv")
    try:
        return int(float(rows[-1]["step"])) if rows else 0
    except (KeyError, ValueError):
        return 0


def log_prediction_grids(run: Path, cfg: Any, pngs: list[Path]) -> None:
    """Log ``predict``'s grid PNGs to the run's tracker as ``predict/<name>`` at the last training step.

    A run without a logger does nothing; a logger whose package is missing now gives one warning line
    (the predictions themselves are already written).
    """
    logger = logger_of(cfg)
    if logger == "none" or not pngs:
        return
    try:
        require(logger)
    except ConfigError as err:
        print(f"warning: prediction grids not logged: {err}", file=sys.stderr)
        return
    step = last_step(run)
    tracker = open_tracker(cfg, run)
    try:
        for png in pngs:
            tracker.log_image(f"predict/{Path(png).stem}", png, step)
    finally:
        tracker.close("done")
