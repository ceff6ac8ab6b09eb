"""Which run a probe works on when the user names none: the newest run under the runs root that the
command can use (any model), announced on stderr as ``using RUN``.

A run can be used when its ``status.json`` says ``done``, it has a checkpoint (``best.pt`` or
``last.pt``) and its method has what the command needs: a stepping model (``stepper``) for predict,
dream, lesion and occlude, one that can unlearn (:class:`predvis.runtime.stepping.Unlearning`) for sleep,
a method with scene test sets (:class:`predvis.runtime.capabilities.SceneTestSets`) for ``occlude --mode
depth-invert``; lesion also needs the pathways it switches off. Judged from the run's saved config and its
method class (through the backend registry), without loading weights.
"""
from __future__ import annotations

import json
import typing
from pathlib import Path

import yaml

from predvis.errors import RunError

NEEDS = {"stepper": "a stepping model", "unlearning": "a stepping model that can unlearn",
         "scenes": "a model with scene test sets (depth_inversion)"}


def stepper_class(method: str) -> type | None:
    """The class a method's ``stepper()`` returns, from its annotation (None when it cannot be resolved)."""
    from predvis.backends.registry import get_method

    try:
        return typing.get_type_hints(get_method(method).stepper).get("return")
    except Exception:  # an unknown method, or an annotation that cannot be resolved here
        return None


def method_can(method: str, needs: str, pathways: tuple[str, ...] = ()) -> bool:
    """Whether runs of ``method`` give what ``needs`` names (see :data:`NEEDS`) and have the stepping
    model's ``pathways`` (lesion; judged when the stepper declares them as a class attribute)."""
    from predvis.backends.registry import get_method
    from predvis.errors import ConfigError
    from predvis.runtime.capabilities import SceneTestSets
    from predvis.runtime.method import Method

    try:
        cls = get_method(method)
    except ConfigError:
        return False
    if needs == "scenes":
        return issubclass(cls, SceneTestSets)
    if getattr(cls, "stepper", None) is Method.stepper:
        return False
    stepping = stepper_class(method)
    if stepping is None:  # not known without loading: let the command judge
        return True
    if needs == "unlearning" and not callable(getattr(stepping, "unlearn_step", None)):   # Unlearning's method
        return False
    declared = getattr(stepping, "pathways", None)
    return not pathways or not isinstance(declared, tuple) or set(pathways) <= set(declared)


def usable(run: Path, needs: str, pathways: tuple[str, ...] = ()) -> bool:
    """Whether ``run`` is finished, has a checkpoint and a method that gives what ``needs`` names."""
    try:
        state = json.loads((run / "status.json").read_text()).get("state")
        cfg = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return False
    if state != "done" or not isinstance(cfg, dict):
        return False
    if not any((run / "checkpoints" / name).is_file() for name in ("best.pt", "last.pt")):
        return False
    return method_can(str(cfg.get("method")), needs, pathways)


def newest_usable(root: Path, needs: str, command: str, pathways: tuple[str, ...] = ()) -> Path:
    """The newest run (by its folder name, a creation stamp) under ``root`` that ``command`` can use."""
    from predvis.run import iter_runs

    root = Path(root)
    candidates = [run for run in iter_runs(root) if usable(run, needs, pathways)]
    if not candidates:
        what = NEEDS[needs] + (f" with pathways {', '.join(pathways)}" if pathways else "")
        raise RunError(f"no finished run of {what} under {root}/ for {command} "
                       f"(train one first, or name the run)")
    return max(candidates, key=lambda p: (p.name, p.stat().st_mtime))


def pick_run(run: Path | None, root: Path, needs: str, command: str, pathways: tuple[str, ...] = ()) -> Path:
    """``run`` if given, else the newest usable run under ``root``, announced as ``using RUN`` on stderr."""
    if run is not None:
        return run
    chosen = newest_usable(root, needs, command, pathways)
    from predvis.progress import info

    info(f"using {chosen}")
    return chosen
