"""The backend registry: an experiment's ``method:`` key -> the Method class that trains it.

A backend is one folder ``predvis/backends/<name>/`` whose Method classes are decorated with
:func:`register`; the folder's ``__init__.py`` imports the modules that register. :data:`BACKENDS`
lists the folders; the registry imports them the first time a name is looked up, so importing the
registry costs nothing.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, TypeVar

from predvis.config import suggest
from predvis.errors import ConfigError

if TYPE_CHECKING:
    from predvis.runtime.method import Method

# one line per backend folder: adding a backend means adding its name here
BACKENDS: tuple[str, ...] = (
    "gopc",
    "pvm",
    "depth_inversion",
    "classifier",
    "prednet",
)

_METHODS: dict[str, "type[Method]"] = {}
_loaded = False

M = TypeVar("M")


def register(name: str) -> Callable[[M], M]:
    """Class decorator: ``@register("gopc")`` makes ``method: gopc`` in an experiment file train this class."""
    def add(cls: M) -> M:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method '{name}' is registered twice ({_METHODS[name].__name__}, {cls.__name__})")
        _METHODS[name] = cls
        return cls
    return add


def _load() -> None:
    global _loaded
    if not _loaded:
        for folder in BACKENDS:
            importlib.import_module(f"predvis.backends.{folder}")
        _loaded = True


def methods() -> dict[str, "type[Method]"]:
    """Every registered method name -> class, in registration order."""
    _load()
    return dict(_METHODS)


def get_method(name: str) -> "type[Method]":
    """The class registered as ``name``; one line naming the known ones otherwise."""
    known = methods()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(
            f"method: unknown method '{name}'{suggest(name, list(known))}; known: {', '.join(known)}"
        ) from None
