"""Read the activations of named layers with forward hooks.

A layer is any sub-module, named as in ``model.named_modules()`` (``conv3``,
``inception4c``, ``inception4d.branch2.0``). The pseudo-layer ``output`` is the model's own
output. :class:`LayerTap` hooks a set of layers once; each :meth:`LayerTap.run` asks for some
of them and the forward pass is cut short as soon as the last of those has fired, so
dreaming on an early layer never pays for the rest of the network.
"""
from __future__ import annotations

import difflib
from typing import Iterable

import torch
from torch import nn

from predvis.errors import PredvisError

OUTPUT = "output"


class _Stop(Exception):
    """Raised inside a hook to cut the forward pass short."""


def _first_tensor(value) -> torch.Tensor | None:
    """The activation of a module: its output, or the first tensor in a tuple/namedtuple."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def layer_names(model: nn.Module) -> list[str]:
    """All hookable names in registration order (which is forward order for most models)."""
    return [name for name, _ in model.named_modules() if name] + [OUTPUT]


def check_layers(model: nn.Module, names: Iterable[str]) -> None:
    """Raise a one-line PredvisError for the first unknown layer name, suggesting close ones."""
    known = layer_names(model)
    known_set = set(known)
    for name in names:
        if name not in known_set:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise PredvisError(
                f"layer '{name}' does not exist in this model{hint} "
                "(list them with predvis deepdream --list-layers)"
            )


class LayerTap:
    """Forward hooks on named layers of ``model``.

    last_call: for recurrent models whose layers run once per time step: keep each layer's
    activation from its *last* call (the settled one) and run the whole forward pass, instead
    of the first call and stopping there.

    Use as a context manager (hooks are removed on exit)::

        with LayerTap(model, ["conv2", "conv3"]) as tap:
            acts = tap.run(x, ["conv2"])   # forward stops right after conv2
    """

    def __init__(self, model: nn.Module, names: Iterable[str], last_call: bool = False):
        self.model = model
        self.last_call = last_call
        self.names = list(dict.fromkeys(names))
        check_layers(model, self.names)
        self._wanted: set[str] = set()
        self._acts: dict[str, torch.Tensor] = {}
        self._handles = []
        modules = dict(model.named_modules())
        for name in self.names:
            if name != OUTPUT:
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(module, args, output):
            if name in self._wanted and (self.last_call or name not in self._acts):
                act = _first_tensor(output)
                if act is None:
                    raise PredvisError(f"layer '{name}' does not output a tensor")
                self._acts[name] = act
                if len(self._acts) == len(self._wanted) and not self.last_call:
                    raise _Stop
        return hook

    def run(self, x: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Forward ``x`` and return ``{name: activation}`` for ``names`` (default: all hooked).

        The forward pass stops at the last of ``names`` to fire, unless ``output`` is asked for.
        """
        wanted = set(self.names if names is None else names)
        unknown = wanted - set(self.names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are not hooked by this LayerTap")
        self._acts = {}
        self._wanted = wanted - {OUTPUT}
        try:
            out = self.model(x)
        except _Stop:
            out = None
        finally:
            self._wanted = set()
        acts, self._acts = self._acts, {}
        if OUTPUT in wanted:
            tensor = _first_tensor(out)
            if tensor is None:
                raise PredvisError("the model's output is not a tensor")
            acts[OUTPUT] = tensor
        return acts

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "LayerTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@torch.no_grad()
def list_layers(model: nn.Module, probe: torch.Tensor | None = None) -> list[tuple[str, str, tuple | None]]:
    """``[(name, module type, output shape or None)]`` for every named layer, in order.

    With ``probe`` (B, C, H, W), one forward pass records each layer's output shape;
    modules that do not run (or do not return a tensor) get ``None``.
    """
    shapes: dict[str, tuple] = {}
    handles = []

    def make(name):
        def hook(module, args, output):
            act = _first_tensor(output)
            if act is not None and name not in shapes:
                shapes[name] = tuple(act.shape)
        return hook

    rows = []
    out_shape = None
    if probe is not None:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make(name)))
        try:
            out = _first_tensor(model(probe))
            out_shape = tuple(out.shape) if out is not None else None
        finally:
            for handle in handles:
                handle.remove()
    for name, module in model.named_modules():
        if name:
            rows.append((name, type(module).__name__, shapes.get(name)))
    rows.append((OUTPUT, "model output", out_shape))
    return rows


def spatial_children(model: nn.Module, probe: torch.Tensor) -> list[str]:
    """Top-level children whose output is (B, C, H, W) with H, W > 1: the ``all`` layer schedule."""
    rows = dict((name, shape) for name, _, shape in list_layers(model, probe))
    return [
        name for name, _ in model.named_children()
        if rows.get(name) is not None and len(rows[name]) == 4 and min(rows[name][2:]) > 1
    ]
