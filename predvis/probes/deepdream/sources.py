"""Where deepdream's models and images come from (nothing is downloaded at run time).

Models: a torchvision architecture (``torchvision:googlenet``, only when torchvision is
installed), or any ``nn.Module`` importable as ``package.module:attr`` (an instance, a class
or a factory called without arguments), each with an optional local weights file. Runs of
predvis itself are loaded by ``command.py`` through the core's ``load_run``.

Images: a scikit-image sample photograph by name, any image file imageio can read, or
``noise``; returned as (1, C, H, W) float tensors in [0, 1].
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from predvis.data.images import fit_size, to_tensor
from predvis.errors import PredvisError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# scikit-image photographs that ship with the package (no download needed).
SAMPLE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "brick", "grass", "gravel")
# Default layer per torchvision architecture (deeper layers are hooked, the forward stops there).
TORCHVISION_DEFAULT_LAYER = {"googlenet": "inception4c", "vgg16": "features.22", "resnet50": "layer3",
                             "alexnet": "features.10", "inception_v3": "Mixed_6b"}


@dataclass
class ModelSource:
    """A model ready to dream on: the module and how to feed it.

    mean, std: per-channel input normalisation applied by the dreamer (None: the model does
    its own). in_channels: channels of the images it reads. default_layer: a sensible layer.
    recurrent: its layers run several times per forward pass (unrolled in time).
    """

    module: nn.Module
    name: str
    in_channels: int
    default_layer: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    recurrent: bool = False  # layers run once per time step: dream on their last (settled) call


def in_channels_of(module: nn.Module, default: int = 3) -> int:
    """Input channels of the first convolution (``default`` if there is none)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return default


def middle_layer(module: nn.Module) -> str:
    """A default layer for unknown models: the middle top-level child (``output`` if none)."""
    names = [n for n, _ in module.named_children()]
    return names[len(names) // 2] if names else "output"


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file: a bare one, or one under ``state_dict`` / ``model``."""
    path = Path(path)
    if not path.is_file():
        raise PredvisError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is a user error here
        raise PredvisError(f"cannot read weights file {path}: {type(err).__name__}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PredvisError(f"weights file {path} does not hold a state dict of tensors")
    return state


def load_weights(module: nn.Module, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load a state dict from a local file into ``module``; one-line errors when it does not fit.

    Accepts a bare state dict or a checkpoint dict holding it under ``state_dict`` or ``model``
    (``state``: already read with :func:`read_state`).
    """
    path = Path(path)
    state = read_state(path) if state is None else state
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise PredvisError(f"weights file {path} does not match the model: {', '.join(parts)}")
    module.load_state_dict(state)


def torchvision_model(arch: str, weights: str | None) -> ModelSource:
    """A torchvision architecture with random or local weights; needs torchvision installed."""
    try:
        import torchvision.models as tvm  # optional extra
    except ImportError:
        raise PredvisError(
            f"torchvision:{arch} needs torchvision, which is not installed (pip install torchvision)"
        ) from None
    state = read_state(weights) if weights else None
    try:
        if arch == "googlenet":
            # torchvision's ImageNet file holds the auxiliary heads (a re-saved one may not): build
            # them when the file has them so it loads strictly, and drop them afterwards.
            aux = state is None or any(k.startswith("aux1.") for k in state)
            # random weights: PyTorch's default init (torchvision's own truncated-normal init with
            # std 0.01 shrinks inception4c's activations to ~1e-16, leaving nothing to ascend)
            module = tvm.googlenet(weights=None, aux_logits=aux, init_weights=False,
                                   transform_input=weights is not None)
        else:
            module = tvm.get_model(arch, weights=None)
    except (ValueError, KeyError, TypeError):
        import difflib

        names = tvm.list_models()
        close = [a for a in names if arch.lower() in a.lower()][:3] or difflib.get_close_matches(arch, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PredvisError(f"torchvision has no model '{arch}'{hint}") from None
    if weights:
        load_weights(module, weights, state)
    if arch == "googlenet":
        module.aux_logits, module.aux1, module.aux2 = False, None, None
    layer = TORCHVISION_DEFAULT_LAYER.get(arch) or middle_layer(module)
    return ModelSource(module.eval(), f"torchvision:{arch}", 3, layer, IMAGENET_MEAN, IMAGENET_STD)


def imported_model(spec: str, weights: str | None) -> ModelSource:
    """``package.module:attr`` naming an nn.Module instance, class or zero-argument factory."""
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise PredvisError(f"model '{spec}' must look like package.module:attr")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as err:
        raise PredvisError(f"cannot import module '{mod_name}': {err}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PredvisError(f"module '{mod_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise PredvisError(f"'{spec}' is not an nn.Module, a class or a factory")
        try:
            obj = obj()
        except TypeError as err:
            raise PredvisError(f"cannot build '{spec}' without arguments: {err}") from None
        if not isinstance(obj, nn.Module):
            raise PredvisError(f"'{spec}' did not give an nn.Module (got {type(obj).__name__})")
    if weights:
        load_weights(obj, weights)
    return ModelSource(obj.eval(), spec, in_channels_of(obj), middle_layer(obj))


def model_source(spec: str, weights: str | None = None) -> ModelSource:
    """``torchvision:ARCH`` or ``package.module:attr`` (predvis runs are handled by the command)."""
    if spec.startswith("torchvision:"):
        return torchvision_model(spec.split(":", 1)[1], weights)
    return imported_model(spec, weights)





def load_image(source: str, channels: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``noise``, a scikit-image photo name, or an image file -> (1, channels, H, W) in [0, 1].

    Noise is uniform grey noise in [0.4, 0.8] (DeepTrip's start), ``size`` x ``size``.
    """
    if size < 8:
        raise PredvisError(f"image size must be >= 8, got {size}")
    if source == "noise":
        g = generator or torch.Generator().manual_seed(0)
        return 0.4 + 0.4 * torch.rand((1, channels, size, size), generator=g)
    if source in SAMPLE_PHOTOS:
        import skimage.data

        return fit_size(to_tensor(getattr(skimage.data, source)(), channels), size)
    path = Path(source)
    if not path.is_file():
        raise PredvisError(
            f"image '{source}' is not a file, 'noise' or a sample photo ({', '.join(SAMPLE_PHOTOS)})"
        )
    try:
        import imageio.v3 as iio

        array = iio.imread(path)
    except Exception as err:  # noqa: BLE001 - any decoder failure is a user error
        raise PredvisError(f"cannot read image {path}: {type(err).__name__}") from None
    if array.ndim == 4:  # an animated file: its first frame
        array = array[0]
    return fit_size(to_tensor(array, channels), size)
