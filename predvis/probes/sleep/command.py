"""``predvis sleep RUN``: load, sleep a copy, write; and the probe's registry entry."""
from __future__ import annotations

import copy
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from predvis import checkpoint
from predvis.config import from_dict
from predvis.errors import PredvisError
from predvis.experiment import load_trained_from
from predvis.probes import attractors as A
from predvis.probes.registry import ProbeSpec, register_probe
from predvis.probes.sleep.cycles import sleep_cycles
from predvis.probes.sleep.measure import energies, evaluate, heldout_frames
from predvis.probes.sleep.settings import SleepOptions, SleepSettings, check_arguments
from predvis.probes.sleep.tables import sleep_markdown, summarise
from predvis.probes.sleep.write import write_sleep_run
from predvis.runtime.stepping import Unlearning
from predvis.progress import console  # the one stderr console: --quiet silences it





def run_sleep(run_path: Path, cycles: int = 5, dream_steps: int = 100, rate: float | None = None, wake: bool = True,
              options: dict | None = None, out: Path | None = None) -> Path:
    """Sleep a copy of ``run_path``'s model; write and return the new run directory.

    rate: None = the model's ``default_unlearn_rate``."""
    from predvis.runtime.device import seed_everything

    s = from_dict(SleepSettings, dict(options or {}), "")
    check_arguments(cycles, dream_steps, 1.0 if rate is None else rate, s.patience)
    run_path = Path(run_path)
    from predvis.run import RunDir, check_space, check_writable

    check_writable(Path(out) if out is not None else run_path.parent.parent, "--runs")
    # best.pt (else last.pt) with the optimiser state: wake continues training exactly as train would
    cfg, method, source = load_trained_from(run_path, with_training_state=True)
    ckpt_path = source["path"]
    state = RunDir(run_path).status().get("state")
    if state == "running":
        print(f"warning: run {run_path} is still training; sleep uses checkpoints/{ckpt_path.name} "
              f"(epoch {source['epochs']}, step {source['step']})", file=sys.stderr)
    stepper = method.stepper()
    if stepper is None:
        raise PredvisError(f"run {run_path} is not a predictive stepping model ('{cfg.method}'); sleep needs one")
    if not isinstance(stepper, Unlearning):
        raise PredvisError(f"the {cfg.name} model of run {run_path} has no unlearning step "
                           "(predvis.runtime.stepping.Unlearning); sleep needs one")
    if rate is None:
        rate = float(stepper.default_unlearn_rate)
    root = Path(out) if out is not None else run_path.parent.parent
    check_space(root, checkpoint.disk_needed(method), "the slept run's checkpoints and figures", "--runs")
    seed_everything(s.seed)
    shape = tuple(stepper.frame_shape)
    seqs = method.test_sequences()
    if s.limit:
        seqs = seqs[: s.limit]
    eval_gen = torch.Generator().manual_seed(s.seed * 100_003 + 1)
    eval_starts = A.make_starts(shape, s.eval_noise, s.grey, heldout_frames(seqs, s.eval_real), eval_gen)

    console.print(f"sleep: {run_path} ({cfg.name}), {cycles} cycles, {dream_steps} dream steps, rate {rate}, "
                  f"wake {'on' if wake else 'off'}")

    before = evaluate(stepper, eval_starts, seqs, dream_steps, s)
    start = checkpoint.snapshot(method)
    rows = sleep_cycles(method, stepper, cycles, dream_steps, rate, wake, s, first_epoch=cfg.train.epochs)
    after = evaluate(stepper, eval_starts, seqs, dream_steps, s)
    shifts = {"after": energies(stepper, before.attractors, s.burn_in)}  # before's attractors, slept model
    payload = copy.deepcopy(checkpoint.payload(method, source["epochs"] - 1, source["step"], source["best_val"]))
    control, control_rows = None, []
    if wake and s.control:  # the same wake phases from the same weights, without unlearning
        checkpoint.restore_snapshot(method, start)
        method.train_mode(False)
        control_rows = sleep_cycles(method, stepper, cycles, dream_steps, rate, wake, s,
                                    first_epoch=cfg.train.epochs, unlearn=False)
        control = evaluate(stepper, eval_starts, seqs, dream_steps, s)
        shifts["control"] = energies(stepper, before.attractors, s.burn_in)

    summary = summarise(before, after, shifts, eval_starts.kinds, dream_steps, s, control)
    settings = {"source": str(run_path), "source_checkpoint": str(ckpt_path),
                "source_epochs": source["epochs"], "source_step": source["step"],
                "source_state": state, "source_running": state == "running", "cycles": cycles,
                "dream_steps": dream_steps, "rate": rate, "wake": wake, **asdict(s)}
    text = sleep_markdown(summary, settings, cfg.name, rows)
    path = write_sleep_run(run_path, out, cfg, method, payload, settings, summary, text, rows + control_rows,
                           before, after, eval_starts, dream_steps, s, control)
    console.print(text, soft_wrap=True)
    return path


def _run_from_options(run: Path, opts: SleepOptions, root: Path, profile: str) -> Path:
    return Path(run_sleep(run, out=root, **opts.kwargs()))   # a new run <root>/<name>-sleep/...


# the fewest dreams and sequences that still exercise every part of a sleep
SMALLEST_SETTINGS = ["noise=2", "grey=1", "real=1", "eval_noise=2", "eval_real=1", "burn_in=2", "limit=2", "patience=3"]


def _can_unlearn(method) -> bool:
    return isinstance(method.stepper(), Unlearning)


PROBE = register_probe(ProbeSpec("sleep", SleepOptions, _run_from_options, _can_unlearn, "predvis sleep RUN",
                                 lambda method: SleepOptions(cycles=1, dream_steps=6, settings=SMALLEST_SETTINGS),
                                 needs="unlearning"))
