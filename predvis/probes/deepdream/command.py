"""``predvis deepdream``: pick a model and an image, dream, write a run directory.

Modes (``mode:``): ``still`` (one dreamed image), ``zoom`` (zoom video with an optional layer
schedule), ``video`` (frame-by-frame dreaming of a user video), ``attack`` (adversarial table;
see adversarial.py). Every call makes a new run directory ``<runs>/<name>/<stamp>_<id>/``
through the core's ``create_run_dir`` holding config.yaml, overrides.yaml, cmd.txt, env.json,
``frames/`` (PNG), ``gifs/`` (GIF, and MP4 when imageio has an ffmpeg backend), ``metrics/``,
``tables/`` and summary.json.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from predvis.allocator import tune_cpu_allocator
from predvis.errors import PredvisError
from predvis.probes.deepdream import objectives as O
from predvis.probes.deepdream import sources as S
from predvis.probes.deepdream.engine import Dreamer, LayerSchedule, dream_video, zoom_video
from predvis.probes.deepdream.layers import OUTPUT, list_layers, spatial_children
from predvis.probes.deepdream.settings import DeepdreamConfig
from predvis.probes.deepdream.targets import Target, resolve_model
from predvis.probes.registry import ProbeSpec, register_probe
from predvis.progress import enabled as progress_enabled
from predvis.runtime.capabilities import LabelledTestImages

from predvis.progress import console  # the one stderr console: --quiet silences it


# --------------------------------------------------------------------------- pieces

def _device(name: str) -> torch.device:
    from predvis.runtime.device import select_device

    return select_device(name)


def _objective(cfg: DeepdreamConfig, target: Target, dreamer_for: Callable[[list[str]], Dreamer]) -> O.Objective:
    spec = cfg.dream.objective or target.source.default_layer

    def guide_features(layer: str) -> torch.Tensor:
        if target.latent_dim:
            raise PredvisError("guide objectives need an image model, not a decoder")
        guide = S.load_image(cfg.image.guide, target.source.in_channels, target.fixed_size or cfg.image.size)
        return dreamer_for([layer]).features(guide, layer)

    return O.parse(spec, guide_features=guide_features)


def _check_objective(dreamer: Dreamer, target: Target, objective, image: torch.Tensor | None) -> None:
    """Evaluate ``objective`` once on the activations of ``image`` (a zero latent for a decoder), before a
    run directory is made: a channel or unit out of range for its layer is then one error line. A layer
    schedule (zoom over layers) names whole layers and needs no check."""
    if not isinstance(objective, O.Objective):
        return
    if image is None:
        z = torch.zeros(1, target.latent_dim, device=dreamer.device)
        acts = _guarded(lambda: _no_grad(lambda: dreamer.tap.run(z, objective.layers)), "reading a latent vector")
    else:
        acts = _guarded(lambda: dreamer.activations(image, objective.layers), f"reading a {tuple(image.shape[2:])} image")
    _no_grad(lambda: objective(acts))


def _no_grad(fn: Callable):
    with torch.no_grad():
        return fn()


def _start_image(cfg: DeepdreamConfig, target: Target, generator: torch.Generator) -> torch.Tensor:
    size = target.fixed_size or cfg.image.size
    img = S.load_image(cfg.image.source, target.source.in_channels, size, generator)
    if target.fixed_size and tuple(img.shape[2:]) != (size, size):
        from predvis.data.images import resize

        img = resize(img, (size, size))
    return img


def _guarded(fn: Callable, what: str):
    try:
        return fn()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise PredvisError(
            f"the model failed while {what} ({first}); it may need a fixed input size (image.size) "
            "or a single octave (dream.octaves=1)"
        ) from None


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                    disable=not progress_enabled())


def write_video(out: Path, name: str, frames: list, fps: float, captions: list[str] | None = None,
                title: list[str] | None = None) -> list[str]:
    """frames/<name>_%06d.png (raw), gifs/<name>.gif (each frame captioned when ``captions`` are
    given), and gifs/<name>.mp4 (raw) when an ffmpeg backend exists."""
    import numpy as np

    from predvis.figures.deepdream import captioned
    from predvis.viz import save_gif, save_png

    written = []
    for i, frame in enumerate(frames):
        save_png(out / "frames" / f"{name}_{i:06d}.png", frame)
    save_gif(out / "gifs" / f"{name}.gif", captioned(frames, captions, title or []) if captions else frames, fps=fps)
    written.append(f"gifs/{name}.gif")
    backend = None
    for module, plugin in (("av", "pyav"), ("imageio_ffmpeg", "FFMPEG")):
        try:
            __import__(module)
            backend = plugin
            break
        except ImportError:
            continue
    if backend is None:
        console.print("MP4 skipped: imageio has no ffmpeg backend (pip install av, or imageio[ffmpeg]); "
                      "PNG frames and the GIF are written", markup=False)
        return written
    import imageio.v3 as iio

    stack = np.stack([f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=2) for f in frames])
    h, w = stack.shape[1:3]
    stack = np.pad(stack, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p needs even sides
    if backend == "pyav":
        iio.imwrite(out / "gifs" / f"{name}.mp4", stack, plugin="pyav", codec="libx264", fps=fps)
    else:
        iio.imwrite(out / "gifs" / f"{name}.mp4", stack, plugin="FFMPEG", fps=fps)
    written.append(f"gifs/{name}.mp4")
    return written


def _to_np(x: torch.Tensor):
    from predvis.viz import to_uint8

    return to_uint8(x[0])


# --------------------------------------------------------------------------- modes

def _dream_latent(dreamer: Dreamer, target: Target, objective: O.Objective, cfg: DeepdreamConfig,
                  generator: torch.Generator, history: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ascent on a decoder's latent input; returns (start image, dreamed image)."""
    z = 0.5 * torch.randn(1, target.latent_dim, generator=generator).to(dreamer.device)
    start = dreamer.activations(z, [OUTPUT])[OUTPUT]
    for _ in range(cfg.dream.steps * cfg.dream.octaves):
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            value = objective(dreamer.tap.run(z, objective.layers))
            (g,) = torch.autograd.grad(value, z)
        z = z.detach() + cfg.dream.latent_step * g / (g.abs().mean() + 1e-12)
        history.append(float(value.detach()))
    return start, dreamer.activations(z, [OUTPUT])[OUTPUT]


def _still(cfg, target, generator, dreamer_for) -> Callable[[Path], dict]:
    from predvis.figures.deepdream import recipe_text, side_by_side
    from predvis.run import write_csv
    from predvis.viz import save_png

    objective = _objective(cfg, target, dreamer_for)
    dreamer = dreamer_for(sorted(objective.layers | {OUTPUT}))
    image = None if target.latent_dim else _start_image(cfg, target, generator).to(dreamer.device)
    _check_objective(dreamer, target, objective, image)  # fail before a run directory is made

    def execute(out: Path) -> dict:
        history: list[float] = []
        started = time.perf_counter()
        if target.latent_dim:
            start, dreamed = _guarded(lambda: _dream_latent(dreamer, target, objective, cfg, generator, history),
                                      "dreaming in its latent space")
        else:
            start = image
            dreamed = _guarded(lambda: dreamer.dream(image, objective, cfg.recipe(), generator, history=history),
                               f"dreaming at {tuple(image.shape[2:])}")
        seconds = time.perf_counter() - started
        save_png(out / "frames" / "input.png", _to_np(start))
        save_png(out / "frames" / "dream.png", _to_np(dreamed.clamp(0, 1)))
        if start.shape == dreamed.shape:
            how = (f"{cfg.dream.steps * cfg.dream.octaves} latent steps" if target.latent_dim
                   else recipe_text(cfg.recipe()))
            save_png(out / "frames" / "side_by_side.png",
                     side_by_side(_to_np(start), _to_np(dreamed.clamp(0, 1)), target.source.name, objective.name,
                                  how, history[0], history[-1]))
        write_csv(out / "metrics" / "objective.csv", [{"step": i, "objective": v} for i, v in enumerate(history)])
        return {"objective": objective.name, "first": history[0], "last": history[-1], "steps": len(history),
                "seconds": seconds, "size": list(dreamed.shape[2:])}

    return execute


def _zoom(cfg, target, generator, dreamer_for) -> Callable[[Path], dict]:
    from predvis.run import write_csv

    if target.latent_dim:
        raise PredvisError("a zoom video needs an image model; this one reads a latent vector (mode still works)")
    image = _start_image(cfg, target, generator)
    layers = cfg.video.layers
    if layers == ["all"]:
        layers = _guarded(lambda: spatial_children(target.source.module, torch.zeros_like(image)),
                          "listing its layers")
    if layers:
        objective = LayerSchedule(layers, cfg.video.layer_every)
        dreamer = dreamer_for(layers)
    else:
        objective = _objective(cfg, target, dreamer_for)
        dreamer = dreamer_for(sorted(objective.layers))
    image = image.to(dreamer.device)
    _guarded(lambda: dreamer.activations(image, objective.layers), f"reading a {tuple(image.shape[2:])} image")
    _check_objective(dreamer, target, objective, image)

    def execute(out: Path) -> dict:
        frames, rows = [], []
        started = time.perf_counter()
        with _progress() as progress:
            task = progress.add_task("zoom frames", total=cfg.video.frames)
            gen = zoom_video(dreamer, image, objective, cfg.recipe(), cfg.video.frames, cfg.video.zoom, generator)
            for i in range(cfg.video.frames):
                first = dreamer.iteration
                frame = _guarded(lambda: next(gen), "dreaming a zoom frame")
                names = sorted({objective.layer_at(k) for k in range(first, dreamer.iteration)}) if isinstance(
                    objective, LayerSchedule) else [objective.name]
                frames.append(_to_np(frame))
                rows.append({"frame": i, "objective": "|".join(names), "iterations": dreamer.iteration})
                progress.advance(task)
        from predvis.figures.deepdream import recipe_text

        captions = [f"frame {r['frame'] + 1} of {len(rows)}: {r['objective'].replace('|', ' then ')}; "
                    f"iterations up to {r['iterations']}" for r in rows]
        sweep = f"; layer changes every {cfg.video.layer_every} iterations" if layers else ""
        title = [f"deepdream zoom on {target.source.name}", f"{recipe_text(cfg.recipe())} per frame, "
                 f"zoom {cfg.video.zoom:g} per frame{sweep}"]
        written = write_video(out, "zoom", frames, cfg.video.fps, captions, title)
        write_csv(out / "metrics" / "zoom.csv", rows)
        return {"frames": len(frames), "files": written, "seconds": time.perf_counter() - started,
                "objectives": sorted({r["objective"] for r in rows})}

    return execute


def _video(cfg, target, generator, dreamer_for) -> Callable[[Path], dict]:
    from predvis.data.video import load_video

    if not cfg.video.input:
        raise PredvisError("mode video needs video.input=PATH (a video file or a folder of images)")
    if target.latent_dim:
        raise PredvisError("dreaming a video needs an image model; this one reads a latent vector")
    size = target.fixed_size or cfg.image.size
    clip = load_video(cfg.video.input, (size, size), channels=target.source.in_channels,
                      max_frames=cfg.video.max_frames)
    objective = _objective(cfg, target, dreamer_for)
    dreamer = dreamer_for(sorted(objective.layers))
    _check_objective(dreamer, target, objective, clip[:1].to(dreamer.device))

    def execute(out: Path) -> dict:
        frames = []
        with _progress() as progress:
            task = progress.add_task("video frames", total=len(clip))
            gen = dream_video(dreamer, (f[None] for f in clip), objective, cfg.recipe(), generator, cfg.video.blend)
            for _ in range(len(clip)):
                frames.append(_to_np(_guarded(lambda: next(gen), "dreaming a video frame")))
                progress.advance(task)
        from predvis.figures.deepdream import recipe_text

        captions = [f"frame {i + 1} of {len(frames)}" for i in range(len(frames))]
        title = [f"deepdream video on {target.source.name}: objective {objective.name}",
                 f"{recipe_text(cfg.recipe())} per frame, blend {cfg.video.blend:g} with the previous dream"]
        return {"frames": len(frames), "files": write_video(out, "video", frames, cfg.video.fps, captions, title)}

    return execute


# --------------------------------------------------------------------------- entry points

def describe_layers(cfg: DeepdreamConfig, runs_root: Path) -> str:
    """The model's layer names, types and output shapes at the configured image size."""
    target = resolve_model(cfg, runs_root)
    module = target.source.module
    size = target.fixed_size or cfg.image.size
    probe = torch.zeros(1, target.latent_dim) if target.latent_dim else torch.zeros(
        1, target.source.in_channels, size, size)
    rows = _guarded(lambda: list_layers(module, probe), f"listing layers at {size}x{size}")
    lines = [f"# {target.source.name}; input {tuple(probe.shape)}; default layer {target.source.default_layer}"]
    width = max(len(r[0]) for r in rows)
    for name, kind, shape in rows:
        lines.append(f"{name:<{width}}  {kind:<20}  {'-' if shape is None else tuple(shape)}")
    return "\n".join(lines)


def run_deepdream(cfg: DeepdreamConfig, runs_root: Path = Path("runs"), overrides: dict | None = None) -> Path:
    """Run one deepdream experiment; returns the new run directory."""
    from predvis.config import dump_yaml
    from predvis.run import atomic_write_json, command_line, create_run_dir, environment

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tune_cpu_allocator()  # as predvis train: freed buffers reused, same numbers
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    target = resolve_model(cfg, runs_root)
    target.source.module.to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    dreamers: dict[tuple, Dreamer] = {}

    def dreamer_for(layers: list[str]) -> Dreamer:
        key = tuple(sorted(layers))
        if key not in dreamers:
            src = target.source
            dreamers[key] = Dreamer(src.module, key, src.mean, src.std, recurrent=src.recurrent,
                                     fixed_size=target.fixed_size)
        return dreamers[key]

    try:
        if cfg.mode == "attack":
            from predvis.probes.deepdream.adversarial import prepare_attacks

            execute = prepare_attacks(cfg, target, generator)
        else:
            execute = {"still": _still, "zoom": _zoom, "video": _video}[cfg.mode](cfg, target, generator, dreamer_for)
    except BaseException:
        for d in dreamers.values():
            d.close()
        raise
    env = environment(device, cfg.seed, extra={"profile": cfg.profile, "model": target.source.name})
    run = create_run_dir(runs_root, cfg.name, {
        "config.yaml": dump_yaml(cfg.to_dict()),
        "overrides.yaml": dump_yaml(overrides or {}),
        "cmd.txt": command_line(),
        "env.json": _json(env),
    })
    console.print(f"deepdream {cfg.mode} on {target.source.name} -> {run.path}")
    try:
        summary = execute(run.path)
    except BaseException:
        run.write_status("failed")
        raise
    finally:
        for d in dreamers.values():
            d.close()
    atomic_write_json(run.path / "summary.json", {"mode": cfg.mode, "model": target.source.name, **summary})
    run.write_status("done")
    return run.path


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


# --------------------------------------------------------------------------- registry

@dataclass
class AttackOptions:
    """What a reproduce cell may set for ``predvis deepdream mode=attack model.source=RUN`` (the adversarial table)."""

    settings: str = "deepdream"            # the deepdream settings file
    profile: str = ""                      # its profile (default: the cell's experiment profile)
    overrides: list[str] = field(default_factory=list)


def _attack_from_options(run: Path, opts: AttackOptions, root: Path, profile: str) -> Path:
    from predvis.config import parse_overrides
    from predvis.probes.deepdream.settings import load_settings

    items = ["mode=attack", f"model.source={run}"] + list(opts.overrides)
    cfg = load_settings(opts.settings, opts.profile or profile, items)
    return Path(run_deepdream(cfg, root, parse_overrides(items)))


PROBE = register_probe(ProbeSpec("attack", AttackOptions, _attack_from_options,
                                 lambda method: isinstance(method, LabelledTestImages),
                                 "predvis deepdream mode=attack model.source=RUN",
                                 lambda method: AttackOptions(profile="smoke")))
