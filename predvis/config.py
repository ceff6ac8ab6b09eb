"""Experiment configuration: plain YAML checked against dataclass schemas.

An experiment file (``experiments/<name>.yaml``) holds::

    name: gopc1            # experiment name (run directories go to runs/<name>/)
    method: gopc           # which backend family trains it (predvis.backends.registry)
    seed: 0
    model: {...}           # the method's ModelConfig
    data: {...}            # the method's DataConfig
    train: {...}           # TrainConfig (or the method's subclass)
    eval: {...}            # the method's EvalConfig
    profiles:              # partial overrides, one per profile
      smoke: {train: {epochs: 1}}
      quick: {...}
      full: {...}

Precedence: dataclass defaults < file < profile < ``KEY=VALUE`` overrides. Every section is
checked: unknown keys are rejected with the closest valid name, values must have the declared
type (numbers finite: no inf or nan), every ``*seed`` key lies in [0, 2**32), and a dataclass may
define ``validate()`` to check ranges.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, get_args, get_origin

import yaml

from predvis.errors import ConfigError

PROFILES = ("smoke", "quick", "full", "long")   # long: CPU, hours, in the background (docs/scaling.md)


def _experiments_dir() -> Path:
    """The experiment files: predvis/experiments, a link to the checkout's experiments/ that a wheel holds as a
    copy; a checkout whose file system kept no link (a text file instead) reads experiments/ directly."""
    here = Path(__file__).resolve().parent
    packaged = (here / "experiments").resolve()
    return packaged if packaged.is_dir() else here.parent / "experiments"


EXPERIMENTS_DIR = _experiments_dir()


# --------------------------------------------------------------------------- schema

@dataclass
class TrainConfig:
    """Settings of the generic training loop (methods may subclass it)."""

    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 0.0          # max global gradient norm; 0 disables clipping
    lr_decay: float = 1.0           # multiplicative LR decay per epoch (ExponentialLR gamma)
    amp: Literal["off", "bf16", "fp16"] = "off"
    threads: int = 0                # torch intra-op threads on CPU; 0 keeps torch's default
    nan_check_every: int = 1        # read the on-device finite flag every N steps
    channels_last: bool = False     # convolution weights and image batches in NHWC memory layout
    compile: bool = False           # torch.compile the training forward (feed-forward models; PVM: its step's element-wise parts)
    pin_memory: bool = False        # batches built on the host go to CUDA from pinned memory, asynchronously
    logger: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"  # experiment tracker (predvis.train.trackers)

    def validate(self) -> None:
        _positive("train.epochs", self.epochs)
        _positive("train.batch_size", self.batch_size)
        _positive("train.lr", self.lr)
        _at_least("train.weight_decay", self.weight_decay, 0)
        _at_least("train.grad_clip", self.grad_clip, 0)
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"train.lr_decay: must be in (0, 1], got {self.lr_decay}")
        _at_least("train.threads", self.threads, 0)
        _positive("train.nan_check_every", self.nan_check_every)


@dataclass
class ExperimentConfig:
    """A whole experiment. ``model``, ``data``, ``train`` and ``eval`` are the method's schemas."""

    name: str
    method: str
    model: Any
    data: Any
    train: Any
    eval: Any
    seed: int = 0
    device: str = "auto"           # auto | cpu | cuda | cuda:N | mps
    profile: str = "quick"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "method": self.method,
            "seed": self.seed,
            "device": self.device,
            "profile": self.profile,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
        }


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


positive = _positive
at_least = _at_least


# --------------------------------------------------------------------------- checking

def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train.lr': 0.001, ...} for a nested config (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where it is lossless."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        hint = suggest(str(value), [str(a) for a in allowed])
        raise ConfigError(f"{where}: must be one of {', '.join(map(str, allowed))}, got {value!r}{hint}")
    if origin in (list, tuple):
        if isinstance(value, str) and "," in value:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: must be a list, got {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ConfigError(f"{where}: must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float range
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        if not math.isfinite(number):  # inf, .inf, nan, 1e400 (overflows to inf)
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: must be a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        if key not in fields:
            raise ConfigError(f"unknown key '{_join(where, key)}'{suggest(key, list(fields))}")
        kwargs[key] = coerce(value, hints[key], _join(where, key))
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(where, missing[0])}: required key is missing")
    for key, value in kwargs.items():
        if key.endswith("seed") and isinstance(value, int):
            check_seed(_join(where, key), value)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


# numpy needs seeds >= 0; torch takes < 2**64, and the methods derive per-epoch seeds as seed * ~10**6 + index
SEED_LIMIT = 2**32


def check_seed(key: str, value: int) -> None:
    """Every ``*seed`` key: an integer in [0, 2**32)."""
    if not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{key}: must be an integer in [0, 2**32), got {value}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# --------------------------------------------------------------------------- merging

def deep_merge(base: dict, update: dict) -> dict:
    """A new dict: ``update`` laid over ``base``, recursing into nested mappings."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict:
    """``["train.lr=3e-4", "model.kind=vae1"]`` -> nested dict; values read as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. train.epochs=3")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}': empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is set twice")
        node[parts[-1]] = value
    return out


def read_yaml(path: Path) -> dict:
    """Read a UTF-8 YAML mapping with ``yaml.safe_load``; a one-line error names a bad file."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"experiment file not found: {path}") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys to values, not {type(data).__name__}")
    return data


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def resolve_experiment(name_or_path: str) -> Path:
    """``gopc1`` -> experiments/gopc1.yaml; a path to a YAML file is taken as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or "/" in name_or_path:
        if not candidate.exists():
            raise ConfigError(f"experiment file not found: {name_or_path}")
        return candidate
    path = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        names = experiment_names()
        raise ConfigError(
            f"unknown experiment '{name_or_path}'{suggest(name_or_path, names)}; "
            f"known: {', '.join(names)}"
        )
    return path


def default_profile() -> str:
    """``full`` when CUDA is available, else ``quick``."""
    import torch

    return "full" if torch.cuda.is_available() else "quick"


class Schemas(Protocol):
    """What :func:`build_config` needs of a backend: the dataclass of each section and a cross-check."""

    ModelConfig: type
    DataConfig: type
    TrainConfig: type
    EvalConfig: type

    @staticmethod
    def check_config(cfg: "ExperimentConfig") -> None: ...


def build_config(raw: dict, profile: str, overrides: dict, source: str,
                 schemas_of: Callable[[str], Schemas]) -> ExperimentConfig:
    """Merge file, profile and overrides, then check everything against the schemas that
    ``schemas_of(method)`` gives (the backend registry's, through :mod:`predvis.experiment`)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{suggest(profile, PROFILES)}; use smoke, quick, full or long")
    raw = dict(raw)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: 'profiles' must be a mapping of profile name to overrides")
    for key in profiles:
        if key not in PROFILES:
            raise ConfigError(f"{source}: unknown profile '{key}'{suggest(str(key), PROFILES)}")
    merged = deep_merge(raw, profiles.get(profile) or {})
    merged = deep_merge(merged, overrides)
    merged.pop("profile", None)
    top = {"name", "method", "seed", "device", "model", "data", "train", "eval"}
    for key in merged:
        if key not in top:
            raise ConfigError(f"unknown key '{key}'{suggest(str(key), sorted(top))} in {source}")
    for key in ("name", "method"):
        if key not in merged:
            raise ConfigError(f"{source}: required key '{key}' is missing")
    schemas = schemas_of(str(merged["method"]))
    cfg = ExperimentConfig(
        name=coerce(merged["name"], str, "name"),
        method=str(merged["method"]),
        seed=_seed(merged.get("seed", 0)),
        device=coerce(merged.get("device", "auto"), str, "device"),
        profile=profile,
        model=from_dict(schemas.ModelConfig, merged.get("model"), "model"),
        data=from_dict(schemas.DataConfig, merged.get("data"), "data"),
        train=from_dict(schemas.TrainConfig, merged.get("train"), "train"),
        eval=from_dict(schemas.EvalConfig, merged.get("eval"), "eval"),
    )
    if not cfg.name or any(c in cfg.name for c in "/\\") or cfg.name.startswith("."):
        raise ConfigError(f"name: must be a plain folder name, got {cfg.name!r}")
    check_device(cfg.device)
    schemas.check_config(cfg)
    return cfg


def _seed(value: Any) -> int:
    seed = coerce(value, int, "seed")
    check_seed("seed", seed)
    return seed


def check_device(device: str) -> None:
    """The device's spelling; whether this machine has it is checked when the run starts."""
    if device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit()):
        return
    raise ConfigError(f"device: must be auto, cpu, cuda, cuda:N or mps, got {device!r}")


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def saved_form(data: Any) -> Any:
    """``data`` as it reads back from a saved ``config.yaml`` (tuples as lists, ...), so a merged config
    compares equal to a run's saved one."""
    return yaml.safe_load(dump_yaml(data))


__all__ = [
    "ExperimentConfig", "TrainConfig", "build_config",
    "parse_overrides", "deep_merge", "from_dict", "coerce", "suggest", "read_yaml", "dump_yaml", "saved_form",
    "resolve_experiment", "default_profile", "PROFILES", "field", "positive", "at_least",
]
