"""What ``predvis sleep`` can be told: its KEY=VALUE settings, the checks of its arguments and the
options a reproduce cell may set."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


from predvis.config import ConfigError, from_dict, parse_overrides
from predvis.errors import PredvisError

PREDICTION_LIMIT = 0.05  # held-out prediction error may grow by at most 5 %


@dataclass
class SleepSettings:
    """KEY=VALUE options of ``predvis sleep`` (besides --cycles, --dream-steps, --rate, --wake)."""

    prime: int = 5               # copies of the start frame before the loop closes
    noise: int = 8               # per cycle: uniform-noise starts (fresh each cycle)
    grey: int = 3                # grey starts at levels (i + 1) / (grey + 1) (cycles and evaluation)
    real: int = 6                # per cycle: static real starts, frames of the training data
    eval_noise: int = 12         # evaluation: noise starts (fixed seed, the same before and after)
    eval_real: int = 8           # evaluation: held-out real starts
    threshold: float = 1e-3      # settling: mean |x_t - x_{t-p}| below this ...
    patience: int = 10           # ... for this many consecutive steps
    burn_in: int = 10            # L: attractor clips are 2L steps, the first L without error / learning
    cluster_mse: float = 1e-3    # attractors closer than this (mean squared difference) are one
    wake_epochs: float = 0.05    # --wake: normal learning per cycle, in epochs of the method (>= 1 step)
    buckets: int = 4             # dream diversity is reported for this many equal stretches of steps
    limit: int = 0               # held-out sequences for the prediction error (0: all)
    figures: int = 3             # dreams drawn before / after (first of each start kind first)
    control: bool = True         # with --wake: also the same wake steps from the same weights, no unlearning
    seed: int = 0

    def validate(self) -> None:
        for key in ("prime", "patience", "burn_in", "buckets"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("noise", "grey", "real", "eval_noise", "eval_real", "limit", "figures"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.noise + self.grey + self.real == 0:
            raise ConfigError("noise, grey, real: at least one dream start per cycle is needed")
        if self.eval_noise + self.grey + self.eval_real < 2:
            raise ConfigError("eval_noise, grey, eval_real: at least two evaluation starts are needed")
        for key in ("threshold", "cluster_mse"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.wake_epochs < 0:
            raise ConfigError(f"wake_epochs: must be >= 0, got {self.wake_epochs}")


def check_arguments(cycles: int, dream_steps: int, rate: float, patience: int) -> None:
    if cycles <= 0:
        raise PredvisError(f"--cycles: must be > 0, got {cycles}")
    if dream_steps <= 0:
        raise PredvisError(f"--dream-steps: must be > 0, got {dream_steps}")
    if dream_steps <= patience:
        raise PredvisError(f"--dream-steps: must be > patience ({patience}) to detect settling, got {dream_steps}")
    if not (rate > 0 and math.isfinite(rate)):
        raise PredvisError(f"--rate: must be > 0 (a fraction of the model's learning rate), got {rate}")



@dataclass
class SleepOptions:
    """What a reproduce cell may set for ``predvis sleep RUN`` (the sleep table): a NEW run
    ``<runs>/<name>-sleep/<stamp>_<id>/`` with ``tables/sleep.md`` / ``sleep.csv``. 0 (or null) keeps the
    command's default; ``settings`` are its KEY=VALUE options (noise=8 grey=3 ...; docs/probes.md, sleep)."""

    cycles: int = 0
    dream_steps: int = 0
    rate: float = 0.0
    wake: bool | None = None
    settings: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for key in ("cycles", "dream_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be > 0 (or 0 for the default of predvis sleep), got {getattr(self, key)}")
        if self.rate < 0:
            raise ConfigError(f"rate: must be > 0 (or 0 for the default of predvis sleep), got {self.rate}")
        from_dict(SleepSettings, parse_overrides(self.settings), "settings")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`run_sleep` (the defaults left out)."""
        out: dict[str, Any] = {"options": parse_overrides(self.settings)}
        for key in ("cycles", "dream_steps", "rate"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.wake is not None:
            out["wake"] = self.wake
        return out


