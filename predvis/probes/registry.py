"""The probe registry: every probe registered once, with the options a table cell may set and how it runs.

A probe module registers itself with ``PROBE = register_probe(ProbeSpec(...))`` and is listed once in
:data:`PROBE_MODULES`; the modules are imported the first time the registry is read. The reproduce cells
read a probe's options dataclass from here (``probes: [{probe: lesion, disable: feedback}]``), the
collector runs a cell's probes through ``spec.run``, the CLI picks the run a probe command takes through
``spec.needs``, and the registry-wide tests run every probe on every backend that ``spec.applies_to`` accepts.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from predvis.config import ConfigError, suggest

# one line per probe module that registers
PROBE_MODULES: tuple[str, ...] = (
    "predvis.probes.predict",
    "predvis.probes.lesion",
    "predvis.probes.occlude",
    "predvis.probes.dream",
    "predvis.probes.sleep",
    "predvis.probes.depth_invert",
    "predvis.probes.deepdream.command",
)


@dataclass(frozen=True)
class ProbeSpec:
    """One probe.

    name: its name in cells (``probe: NAME``) and, for most, its output folder ``<run>/<name>/``.
    Options: the dataclass of what a cell may set (checked like experiment files; 0 / empty = the
        command's default).
    run: (run directory, options, runs root, collector profile) -> the folder it wrote.
    applies_to: (a loaded Method) -> whether this probe can run on it (a stepper, a pathway, a capability).
    command: the CLI command that runs it (for messages and docs).
    smallest: (a loaded Method) -> the options of the smallest meaningful run of this probe on it (seconds on a
        smoke model; what the registry-wide tests run).
    needs: what a run must offer, judged from its saved config without loading it (:mod:`predvis.run_choice`:
        ``stepper``, ``unlearning``, ``scenes``); the CLI takes the newest such run when none is named.
    """

    name: str
    Options: type
    run: Callable[[Path, Any, Path, str], Path]
    applies_to: Callable[[Any], bool]
    command: str
    smallest: Callable[[Any], Any] = lambda method: None
    needs: str = "stepper"


def register_probe(spec: ProbeSpec) -> ProbeSpec:
    """Check a spec and return it; the module keeps it as its ``PROBE``."""
    if not spec.name.isidentifier():
        raise ValueError(f"probe name '{spec.name}' must be an identifier")
    return spec


def probes() -> dict[str, ProbeSpec]:
    """Every registered probe, name -> spec, in the order of :data:`PROBE_MODULES`."""
    out: dict[str, ProbeSpec] = {}
    for module in PROBE_MODULES:
        spec = importlib.import_module(module).PROBE
        if spec.name in out:
            raise ValueError(f"probe '{spec.name}' is registered twice")
        out[spec.name] = spec
    return out


def get_probe(name: str, where: str = "probe") -> ProbeSpec:
    known = probes()
    if name not in known:
        raise ConfigError(f"{where}: unknown probe '{name}'{suggest(name, list(known))}; known: {', '.join(known)}")
    return known[name]


def has_stepper(method: Any) -> bool:
    """A run whose Method offers a predictive stepping model (dream, lesion, occlude, sleep, predict)."""
    return method.stepper() is not None
