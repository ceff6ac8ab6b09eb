"""Benchmark of the training options: precision, memory layout, torch.compile, data parallelism.

Each candidate is the real training step of a Method (``Method.train_step`` on batches from its
own ``train_batches``), built from the experiment's YAML with ``KEY=VALUE`` overrides, so what is
timed is what ``predvis train`` runs. Candidates of one model are timed in interleaved rounds in
one process (``predvis.bench.time_side_by_side``); the ratio to the plain fp32 step is the
figure. Data parallelism is timed by launching ``torch.distributed.run`` with 1 and 2 processes
on the same global batch (gloo on the CPU, NCCL on CUDA) and comparing steps per second.

    python -m predvis.bench_train_options [--size quick|full] [--device cpu|cuda]
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

from predvis.bench.timing import time_side_by_side
from predvis.experiment import load_experiment
from predvis.errors import PredvisError
from predvis.backends.registry import get_method
from predvis.tables import markdown_table


def step_timer(experiment: str, profile: str, overrides: list[str], device: torch.device,
               batches: int | None = 4, losses: list | None = None) -> tuple[Callable[[], None], float]:
    """(one training step on the next of ``batches`` cached batches, seconds of the first step).

    ``batches=None``: live batches from ``train_batches``, epoch after epoch (data generation timed too).
    The first step is run here: for ``train.compile=true`` it includes the compilation. ``losses``:
    a list that every step's training loss is appended to.
    """
    cfg = load_experiment(experiment, profile, [*overrides, f"device={device.type}"])
    torch.manual_seed(0)
    method = get_method(cfg.method)(cfg, device)
    method.train_mode(True)
    if batches is None:
        cycle = itertools.chain.from_iterable(method.train_batches(e) for e in itertools.count())
    else:
        cycle = itertools.cycle(list(itertools.islice(method.train_batches(0), batches)))

    def step() -> None:
        out = method.train_step(next(cycle))
        if losses is not None:
            losses.append(float(out["loss"]))

    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return step, time.perf_counter() - start


def _options(device: torch.device, with_compile: bool) -> dict[str, list[str]]:
    opts = {"fp32": [], "channels-last": ["train.channels_last=true"], "bf16 autocast": ["train.amp=bf16"]}
    if device.type == "cuda":
        opts["fp16 autocast + scaler"] = ["train.amp=fp16"]
        opts["bf16 + channels-last + pinned"] = ["train.amp=bf16", "train.channels_last=true", "train.pin_memory=true"]
    if with_compile:
        opts["torch.compile"] = ["train.compile=true"]
    return opts


MODELS = {
    # name: (experiment, profile, overrides, options that apply)
    "digit classifier (full: widths 16-32-64, batch 128)": ("classifier", "full", [], "all"),
    "BLT-BLT autoencoder (full: batch 100, 4 steps)": (
        "depth_inversion", "full", ["data.train_scenes=400", "data.val_scenes=100", "data.test_scenes=100"], "all"),
    "GOPC-1 (full architecture, batch B)": ("gopc1", "full", ["data.train_sequences=200"], "amp"),
    "VAE-1 (full architecture, batch B)": ("vae1", "full", ["data.train_sequences=200"], "amp"),
}


def bench_options(device: torch.device, repeats: int, gopc_batch: int, with_compile: bool) -> tuple[str, list]:
    rows = []
    for name, (exp, profile, base, which) in MODELS.items():
        base = [*base, f"train.batch_size={gopc_batch}"] if exp.startswith(("gopc", "vae")) else list(base)
        opts = _options(device, with_compile)
        if which == "amp":  # GOPC: the option that changes its arithmetic; compile is refused
            opts = {k: v for k, v in opts.items() if "compile" not in k and k != "channels-last"}
        timers, firsts = {}, {}
        for label, extra in opts.items():
            try:
                timers[label], firsts[label] = step_timer(exp, profile, [*base, *extra], device)
            except (PredvisError, RuntimeError) as err:  # e.g. bf16 kernels missing: say so, keep going
                rows.append([name.replace("batch B", f"batch {gopc_batch}"), label, "-", "-", "-",
                             f"failed: {str(err).splitlines()[0][:80]}"])
        times = time_side_by_side(timers, repeats, device, warmup=1)
        base_med = statistics.median(times["fp32"]) if "fp32" in times else None
        for label, t in times.items():
            med = statistics.median(t)
            note = f"first step {firsts[label]:.1f} s (compilation)" if "compile" in label else ""
            rows.append([name.replace("batch B", f"batch {gopc_batch}"), label, min(t) * 1e3, med * 1e3,
                         (base_med / med) if base_med else "-", note])
    text = markdown_table(["model", "option", "min ms/step", "median ms/step", "speed-up vs fp32", "note"], rows)
    return text, rows


# ----------------------------------------------------------------------------- data parallel

DDP_EXPERIMENT = ("classifier", "full", ("train.batch_size=256",))


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _threads_per_process(world: int) -> int:
    """The cores shared evenly among ``world`` processes (at least 1 each)."""
    return max(1, _cores() // world)


def _ddp_worker(steps: int, threads: int, exp: str, profile: str, overrides: list[str]) -> None:
    """Run under torchrun: time ``steps`` training steps; rank 0 prints a JSON line."""
    from predvis.runtime import distributed

    device = distributed.init("auto") or torch.device("cpu")
    torch.set_num_threads(threads)
    step, _ = step_timer(exp, profile, overrides, device)
    for _ in range(2):
        step()
    distributed.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = float(distributed.all_average({"s": torch.tensor(time.perf_counter() - start)})["s"])
    # every rank leaves the last collective together before the group is torn down, as predvis train does
    distributed.barrier()
    if distributed.is_main():
        print(json.dumps({"world": distributed.world_size(), "threads": threads, "steps_per_s": steps / seconds}))
    distributed.shutdown()


def _failure(stderr: str) -> str:
    """The most telling line of a failed torchrun: a worker's exception or C++ abort before the agent's summary."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip().strip("=-")]  # no rulers
    for key in ("what():", "Error:", "Error", "terminate called"):
        hit = [ln for ln in lines if key in ln and "Signal" not in ln]
        if hit:
            return hit[0]
    return lines[-1] if lines else "no output"


def bench_ddp(steps: int = 20, rounds: int = 2, experiment: tuple = DDP_EXPERIMENT,
              threads: int | None = None) -> tuple[str, dict]:
    """Steps/s of the same global batch with 1 and 2 processes (gloo on CPU), interleaved rounds.

    ``threads`` per process defaults to the cores shared evenly. The processes meet on the loopback
    address, so the bench does not depend on the host name resolving (it need not, on one machine).
    """
    exp, profile, overrides = experiment
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for world in (1, 2):
            each = threads or _threads_per_process(world)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
                   f"--nproc_per_node={world}", "-m", "predvis.bench.train_options",
                   str(steps), str(each), exp, profile, *overrides]
            env = {**os.environ, "OMP_NUM_THREADS": str(each)}
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode != 0 or not line:
                tail = "\n".join(done.stderr.strip().splitlines()[-20:])
                return (f"data-parallel benchmark failed ({world} process{'es' if world > 1 else ''}, exit {done.returncode}): "
                        f"{_failure(done.stderr)}\n\n```\n{tail}\n```\n"), {}
            rates[world].append(json.loads(line[-1])["steps_per_s"])
    med = {w: statistics.median(r) for w, r in rates.items()}
    rows = [[w, threads or _threads_per_process(w), min(r), med[w], med[w] / med[1]] for w, r in rates.items()]
    text = (f"`{exp}` ({profile}, {' '.join(overrides)}), same global batch; each process gets "
            f"{'%d thread(s)' % threads if threads else 'cores / world threads'}; {rounds} interleaved rounds of "
            f"{steps} steps.\n\n"
            + markdown_table(["processes", "threads each", "min steps/s", "median steps/s", "x 1 process"], rows))
    return text, med


def run(size: str = "quick", device: torch.device | str = "cpu") -> str:
    """The ``make bench`` section."""
    device = torch.device(device)
    full = size == "full" or device.type == "cuda"
    repeats = 10 if device.type == "cuda" else 5
    with_compile = full
    gopc_batch = 50 if full else 10
    text, _ = bench_options(device, repeats, gopc_batch, with_compile)
    out = (
        "## Training options: precision, memory layout, compile\n\n"
        f"The real `train_step` of each Method, {repeats} interleaved rounds on {device}; speed-up = fp32 median / "
        "option median (above 1 = faster). "
        + ("" if with_compile else "torch.compile is measured with `BENCH=full` (compiling takes minutes on this CPU). ")
        + "\n\n" + text + "\n"
    )
    if device.type == "cpu":
        ddp, _ = bench_ddp()
        out += "\n## Data parallel (torchrun, gloo)\n\n" + ddp + "\n"
    return out


if __name__ == "__main__":   # bench_ddp's worker: python -m predvis.bench.train_options STEPS THREADS EXP PROFILE [KEY=VALUE ...]
    _ddp_worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
