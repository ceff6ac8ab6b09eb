"""The sleep loop: dream, find the attractors, unlearn them, and (``--wake``) learn from real frames."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from predvis.errors import TrainingDiverged
from predvis.probes import attractors as A
from predvis.probes.common import device_of
from predvis.probes.dream import Settling
from predvis.progress import console  # the one stderr console: --quiet silences it
from predvis.progress import enabled as progress_enabled
from predvis.probes.sleep.measure import training_frames
from predvis.probes.sleep.settings import SleepSettings
from predvis.runtime.unlearning import attractor_clip, settling_energy




@dataclass
class CycleRow:
    run: str               # 'sleep' or 'control' (wake only)
    cycle: int
    dreams: int
    settled: int
    fixed_points: int
    cycles_found: int
    mean_settle_step: float
    energy_before: float   # mean settling energy at this cycle's attractors, before unlearning them
    energy_after: float    # ... right after each one's unlearning step
    wake_steps: int
    wake_loss: float


def _check_finite(method, where: str) -> None:
    for module in method.state_modules().values():
        for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise TrainingDiverged(f"sleep stopped: weight '{name}' is NaN or inf {where}; "
                                       "lower --rate (nothing was written)")


def sleep_cycles(method, stepper, cycles: int, steps: int, rate: float, wake: bool, s: SleepSettings,
                 first_epoch: int, unlearn: bool = True) -> list[CycleRow]:
    """Run the cycles in place on ``method``'s model; one row per cycle. ``unlearn=False``: the
    wake phases alone (the control), on the same training batches."""
    shape = tuple(stepper.frame_shape)
    dev = device_of(stepper)
    rows = []
    wake_steps = max(1, round(s.wake_epochs * method.steps_per_epoch())) if wake and s.wake_epochs > 0 else 0
    label = "sleep cycle" if unlearn else "wake-only control"
    with Progress(TextColumn(f"[bold]{label} " + "{task.completed}/{task.total}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=True,
                  disable=not progress_enabled()) as bar:
        task = bar.add_task("sleep", total=cycles, info="")
        for c in range(cycles):
            gen = torch.Generator().manual_seed(s.seed * 100_003 + 7919 * (c + 1))
            epoch = first_epoch + c
            settled: list[Settling | None] = []
            if unlearn:
                real = training_frames(method, s.real, epoch, shape, gen)
                starts = A.make_starts(shape, s.noise, s.grey, real, gen)
                stepper.set_learning(False)
                dreams = A.closed_loop(stepper, starts.frames, s.prime, steps)
                settled = A.settle_all(dreams, s.threshold, s.patience)
            e0, e1 = [], []
            for i, st in enumerate(settled):
                if st is None:
                    continue
                clip = attractor_clip(A.attractor_frames(dreams[i], st, s.patience)[None].to(dev), s.burn_in)
                with torch.no_grad():
                    e0.append(float(settling_energy(stepper.step, stepper.init_state, clip, s.burn_in)[0]))
                stepper.unlearn_step(clip, rate, s.burn_in)
                stepper.set_learning(False)
                with torch.no_grad():
                    e1.append(float(settling_energy(stepper.step, stepper.init_state, clip, s.burn_in)[0]))
            _check_finite(method, f"after the unlearning of cycle {c + 1}")
            losses = []
            if wake_steps:
                method.train_mode(True)
                for batch in itertools.islice(method.train_batches(epoch), wake_steps):
                    losses.append(float(method.train_step(batch)["loss"]))
                method.train_mode(False)
                stepper.set_learning(False)
                _check_finite(method, f"after the wake phase of cycle {c + 1}")
            found = [st for st in settled if st is not None]
            mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
            rows.append(CycleRow("sleep" if unlearn else "control", c + 1, len(settled), len(found), sum(st.period == 1 for st in found),
                                 sum(st.period > 1 for st in found), mean([st.step for st in found]),
                                 mean(e0), mean(e1), len(losses), mean(losses)))
            info = (f"{len(found)}/{len(settled)} settled and unlearnt; energy {mean(e0):.2e} -> {mean(e1):.2e}"
                    if unlearn else f"wake loss {mean(losses):.4g}")
            bar.update(task, advance=1, info=info)
    return rows
