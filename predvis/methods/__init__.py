"""The one map from an experiment's ``method:`` key to the class that trains it."""
from __future__ import annotations

from predvis.config import suggest
from predvis.errors import ConfigError
from predvis.methods.base import Method
from predvis.methods.classifier import ClassifierMethod
from predvis.methods.depth_inversion import DepthInversionMethod
from predvis.methods.gopc import GopcMethod
from predvis.methods.gopc2 import Gopc2Method
from predvis.methods.pvm import PVMMethod

METHODS: dict[str, type[Method]] = {
    "gopc": GopcMethod,
    "gopc2": Gopc2Method,
    "classifier": ClassifierMethod,
    "pvm": PVMMethod,
    "depth_inversion": DepthInversionMethod,
}


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"method: unknown method '{name}'{suggest(name, list(METHODS))}; known: {', '.join(METHODS)}"
        ) from None
