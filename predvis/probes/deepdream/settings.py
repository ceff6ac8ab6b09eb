"""The schema of ``experiments/deepdream.yaml`` and how it is loaded.

Precedence as for training: dataclass defaults < file < profile < ``KEY=VALUE`` overrides,
checked by predvis.config (unknown keys get the closest valid name, wrong types and ranges
are one-line errors). Every knob is described in docs/deepdream.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from predvis.config import (
    PROFILES, ConfigError, deep_merge, from_dict, parse_overrides, read_yaml, resolve_experiment, suggest,
)
from predvis.probes.deepdream.engine import Recipe


@dataclass
class ModelChoice:
    """source: ``classifier`` (newest classifier run under --runs), a run directory, ``torchvision:ARCH``
    or ``package.module:attr``. weights: a local state-dict file (torchvision / imported models).
    module: which part of a predvis run, dotted (``classifier``, ``model.encoder``, ``model.decoder``);
    empty = the natural one. mean, std: input normalisation of imported models (empty = none)."""

    source: str = "classifier"
    weights: str = ""
    module: str = ""
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def validate(self) -> None:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ConfigError("model.mean / model.std: give both, of the same length, with std > 0")


@dataclass
class ImageChoice:
    """source: a scikit-image photo name (camera, astronaut, coffee, ...), an image file, or noise.
    size: longer side in pixels. guide: image for ``guide:LAYER`` objectives."""

    source: str = "camera"
    size: int = 128
    guide: str = "coffee"

    def validate(self) -> None:
        if self.size < 8:
            raise ConfigError(f"image.size: must be >= 8, got {self.size}")


@dataclass
class DreamChoice(Recipe):
    """The recipe (engine.Recipe) plus the objective text (objectives.py); empty = the model's
    default layer. latent_step: step of latent-space dreaming on decoders (mean |change| of z)."""

    objective: str = ""
    latent_step: float = 0.05

    def validate(self) -> None:
        try:
            Recipe.validate(self)
        except Exception as err:  # PredvisError -> ConfigError with the section name
            raise ConfigError(str(err).replace("deepdream recipe: ", "dream.")) from None


@dataclass
class VideoChoice:
    """Zoom video (mode zoom) and frame-by-frame dreaming (mode video).

    frames: frames of the zoom video; zoom: fraction cropped per frame (0.05 = 1.053x);
    layers: layer schedule, a list or ``[all]`` (empty = the objective); layer_every: change the
    layer every M iterations; fps: of the GIF / MP4; input: a video file or image folder for
    mode video; blend: weight of the previous dreamed frame; max_frames: frames read from input."""

    frames: int = 30
    zoom: float = 0.05
    layers: list[str] = field(default_factory=list)
    layer_every: int = 100
    fps: float = 10.0
    input: str = ""
    blend: float = 0.15
    max_frames: int = 60

    def validate(self) -> None:
        if self.frames < 1:
            raise ConfigError(f"video.frames: must be >= 1, got {self.frames}")
        if not 0 <= self.zoom < 1:
            raise ConfigError(f"video.zoom: must be in [0, 1), got {self.zoom}")
        if self.layer_every < 1:
            raise ConfigError(f"video.layer_every: must be >= 1, got {self.layer_every}")
        if self.fps <= 0:
            raise ConfigError(f"video.fps: must be > 0, got {self.fps}")
        if not 0 <= self.blend < 1:
            raise ConfigError(f"video.blend: must be in [0, 1), got {self.blend}")
        if self.max_frames < 1:
            raise ConfigError(f"video.max_frames: must be >= 1, got {self.max_frames}")


@dataclass
class AttackChoice:
    """Adversarial table (mode attack) on held-out digits of the classifier run.

    images: how many test images; eps: L-inf budgets in [0, 1] pixel units; steps, alpha: PGD
    iterations and step (0 = 2.5 * eps / steps, Madry et al.); patches: patch sides in pixels;
    patch_steps, patch_alpha: patch iterations and step; patch_at: [top, left] of every patch
    (empty = a random location per image); target_shift: targeted attacks aim at
    (label + shift) mod classes; random_start: PGD starts at a random point of the eps-ball;
    grid: images shown in the grid."""

    images: int = 500
    eps: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3])
    steps: int = 40
    alpha: float = 0.0
    patches: list[int] = field(default_factory=lambda: [4, 8, 12])
    patch_at: list[int] = field(default_factory=list)
    patch_steps: int = 100
    patch_alpha: float = 0.05
    target_shift: int = 1
    random_start: bool = True
    grid: int = 8

    def validate(self) -> None:
        if self.images < 1:
            raise ConfigError(f"attack.images: must be >= 1, got {self.images}")
        for e in self.eps:
            if e < 0:
                raise ConfigError(f"attack.eps: must be >= 0, got {e}")
        for p in self.patches:
            if p < 1:
                raise ConfigError(f"attack.patches: patch sides must be >= 1, got {p}")
        for key in ("steps", "patch_steps", "grid"):
            if getattr(self, key) < 1:
                raise ConfigError(f"attack.{key}: must be >= 1, got {getattr(self, key)}")
        if self.patch_at and (len(self.patch_at) != 2 or min(self.patch_at) < 0):
            raise ConfigError(f"attack.patch_at: must be [top, left] in pixels, got {self.patch_at}")
        if self.alpha < 0 or self.patch_alpha <= 0:
            raise ConfigError("attack.alpha must be >= 0 and attack.patch_alpha > 0")


@dataclass
class DeepdreamConfig:
    """The whole deepdream experiment (``experiments/deepdream.yaml``)."""

    name: str = "deepdream"
    mode: Literal["still", "zoom", "video", "attack"] = "still"
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    model: ModelChoice = field(default_factory=ModelChoice)
    image: ImageChoice = field(default_factory=ImageChoice)
    dream: DreamChoice = field(default_factory=DreamChoice)
    video: VideoChoice = field(default_factory=VideoChoice)
    attack: AttackChoice = field(default_factory=AttackChoice)
    profile: str = "quick"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def recipe(self) -> Recipe:
        fields = {f.name for f in dataclasses.fields(Recipe)}
        return Recipe(**{k: v for k, v in dataclasses.asdict(self.dream).items() if k in fields})


def load_settings(experiment: str = "deepdream", profile: str = "quick", overrides: list[str] | None = None) -> DeepdreamConfig:
    """The merged, checked deepdream settings of an experiment name or YAML path."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'{suggest(profile, PROFILES)}; use smoke, quick, full or long")
    path = resolve_experiment(experiment)
    raw = read_yaml(path)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict) or any(k not in PROFILES for k in profiles):
        raise ConfigError(f"{path}: 'profiles' must map smoke / quick / full to overrides")
    merged = deep_merge(deep_merge(raw, profiles.get(profile) or {}), parse_overrides(overrides or []))
    merged["profile"] = profile
    return from_dict(DeepdreamConfig, merged, "")
