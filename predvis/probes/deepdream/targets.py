"""Which model deepdream works on: a predvis run's part, a torchvision model, or an imported module.

``resolve_model`` turns ``model.source`` into a :class:`Target`: the module, how to feed it
(channels, input normalisation, a fixed input size, or a latent vector for decoders) and, for
runs, the loaded Method (the attacks need the classifier's held-out test digits).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from predvis.errors import PredvisError
from predvis.runtime.stepping import HasFeedforwardView
from predvis.probes.deepdream import sources as S
from predvis.probes.deepdream.layers import OUTPUT, list_layers
from predvis.probes.deepdream.settings import DeepdreamConfig


@dataclass
class Target:
    """The model deepdream works on.

    fixed_size: the only input side the model accepts (None: any size).
    latent_dim: the model reads a (B, latent_dim) vector (a decoder): dreams are optimised in
        that latent space and shown through the model's output image.
    method: the predvis Method when the model comes from a run (attacks need its test digits).
    """

    source: S.ModelSource
    fixed_size: int | None = None
    latent_dim: int | None = None
    method: object | None = None
    run: Path | None = None


# --------------------------------------------------------------------------- models

def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_modules() if n and not list(m.children())]


def _latent_dim(module: nn.Module) -> int | None:
    leaves = _leaves(module)
    if leaves and isinstance(leaves[0][1], nn.Linear) and not any(isinstance(m, nn.Conv2d) for _, m in leaves):
        return leaves[0][1].in_features
    return None


def _pick_submodule(mods: dict[str, nn.Module], name: str, run: Path) -> nn.Module:
    head, _, rest = name.partition(".")
    if head not in mods:
        raise PredvisError(f"run {run} has no module '{head}'{_suggest(head, list(mods))}; it has {', '.join(mods)}")
    root = mods[head]
    if not rest:
        return root
    names = [n for n, _ in root.named_modules() if n]
    if rest not in names:
        raise PredvisError(f"module '{head}' of run {run} has no part '{rest}'{_suggest(rest, names)}")
    sub = root.get_submodule(rest)
    if sub is None:
        raise PredvisError(f"'{name}' is not present in this run's model")
    return sub


def _suggest(name: str, choices: list[str]) -> str:
    from predvis.config import suggest

    return suggest(name, choices)


def _has_forward(module: nn.Module) -> bool:
    return getattr(type(module).forward, "__name__", "") != "_forward_unimplemented"


def _default_part(mods: dict[str, nn.Module]) -> str:
    if "classifier" in mods:
        return "classifier"
    head = next(iter(mods))
    if _has_forward(mods[head]):  # a whole image-to-image model (recurrent autoencoder)
        return head
    for part in ("encoder", "decoder"):
        if getattr(mods[head], part, None) is not None:
            return f"{head}.{part}"
    return head


def from_run(run: Path, part: str = "") -> Target:
    """A module of a trained predvis run (classifier, GOPC-1 decoder, VAE-1 encoder, a recurrent
    autoencoder, or a stepping model through its feed-forward view, :class:`HasFeedforwardView`)."""
    from predvis.experiment import load_trained

    cfg, method = load_trained(run, device="cpu")
    mods = method.state_modules()
    name = part or _default_part(mods)
    module = _pick_submodule(mods, name, run).eval()
    if isinstance(module, HasFeedforwardView):
        view = module.feedforward_view()
        source = S.ModelSource(view.module.eval(), f"run {run} ({name}, {view.note})", view.channels,
                               view.default_layer)
        return Target(source, view.fixed_size, None, method, Path(run))
    if not _has_forward(module):
        raise PredvisError(
            f"'{name}' of run {run} has no feed-forward pass (a stepping model); deepdream needs a module that "
            f"maps an input to activations: pick one with model.module=NAME.PART (see --list-layers of a part)"
        )
    latent = _latent_dim(module)
    is_classifier = cfg.method == "classifier" and name == "classifier"
    fixed = None if is_classifier else getattr(cfg.data, "size", None)
    has_conv = any(isinstance(m, nn.Conv2d) for m in module.modules())
    channels = (S.in_channels_of(module) if has_conv else None) or getattr(cfg.model, "in_channels", None) \
        or getattr(cfg.model, "channels", None) or 3
    if is_classifier:
        default = "conv3"
    else:
        default = _deep_spatial_layer(module, latent, channels, fixed or 64)
    recurrent = bool(getattr(module, "pathways", ()))  # a recurrent autoencoder with lateral / top-down loops
    source = S.ModelSource(module, f"run {run} ({name})", channels, default, recurrent=recurrent)
    return Target(source, fixed, latent, method, Path(run))


def _deep_spatial_layer(module: nn.Module, latent: int | None, channels: int, size: int) -> str:
    """About two thirds of the way through the leaf layers with (B, C, H, W) outputs."""
    probe = torch.zeros(1, latent) if latent else torch.zeros(1, channels, size, size)
    try:
        rows = {n: s for n, _, s in list_layers(module, probe)}
    except RuntimeError:
        return OUTPUT
    spatial = [n for n, _ in _leaves(module) if rows.get(n) and len(rows[n]) == 4 and min(rows[n][2:]) > 1]
    encoder = [n for n in spatial if n.startswith("encoder.")]
    if encoder and any(not n.startswith("encoder.") for n in spatial):
        # a whole autoencoder: the encoder's deepest (smallest) map, where its features are richest
        return min(encoder, key=lambda n: rows[n][2] * rows[n][3])
    return spatial[int(0.66 * (len(spatial) - 1))] if spatial else OUTPUT


def resolve_model(cfg: DeepdreamConfig, runs_root: Path) -> Target:
    choice = cfg.model
    if choice.source == "classifier":
        from predvis.run import newest_run

        try:
            run = newest_run(runs_root, method="classifier")
        except PredvisError:
            raise PredvisError(
                f"no trained classifier run under {runs_root}/: run `predvis train classifier --profile smoke` "
                "(seconds) or set model.source to a run, torchvision:ARCH or package.module:attr"
            ) from None
        return from_run(run, choice.module)
    path = Path(choice.source)
    if path.is_dir():
        return from_run(path, choice.module)
    if ":" not in choice.source:
        raise PredvisError(
            f"model.source '{choice.source}' is not a run directory, 'classifier', torchvision:ARCH or package.module:attr"
        )
    src = S.model_source(choice.source, choice.weights or None)
    if choice.mean:
        src.mean, src.std = tuple(choice.mean), tuple(choice.std)
    return Target(src)
