"""``predvis bench`` (``make bench``): benchmarks measured side by side in one run, written to
bench/results.md (bench/results-cuda.md on a GPU).

Each figure is a ratio or a rate from the same process: candidates are timed in interleaved rounds
(A B C A B C ...) so that machine noise hits them alike, and min / median over the rounds are reported.
Nothing here is a test: no figure is asserted. One module per benchmark: :mod:`predvis.bench.gopc`,
:mod:`~predvis.bench.pvm`, :mod:`~predvis.bench.recurrent_ae`, :mod:`~predvis.bench.deepdream`,
:mod:`~predvis.bench.train_options`, and :mod:`~predvis.bench.roofline` (every goal against the measured peaks).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Optional

import typer

from predvis.errors import PredvisError


def machine_header(device) -> str:
    import torch

    from predvis.allocator import allocator_state

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return (
        f"# predvis benchmarks\n\n- date: {time.strftime('%Y-%m-%d %H:%M')}\n- device: {device} ({name}), "
        f"{torch.get_num_threads()} CPU threads\n- python {platform.python_version()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}\n- how: `make bench` (`predvis bench`); figures are medians of "
        f"interleaved rounds in one process; ratios compare figures from the same run only.\n"
        f"- host allocator: {allocator_state()} (as in `predvis train`; the allocator section runs child processes)\n\n"
    )


def optional_sections(size: str, device) -> list[str]:
    """Benchmarks of the other backends; on the CPU, last, the speed goals against the machine's peaks."""
    import torch

    from predvis.bench.allocator import section as bench_allocator
    from predvis.bench.deepdream import run as bench_deepdream
    from predvis.bench.pvm import bench_pvm_results, bench_pvm_section
    from predvis.bench.recurrent_ae import bench_recurrent_ae, section as recurrent_ae_section
    from predvis.bench.roofline import section as roofline_section
    from predvis.bench.train_options import run as bench_train_options

    if device.type != "cpu":
        return [bench_pvm_section(device), bench_deepdream(size=size, device=device),
                bench_train_options(size=size, device=device)]
    pvm = bench_pvm_results()
    blt = bench_recurrent_ae()
    return [bench_pvm_section(device, pvm), recurrent_ae_section(blt), bench_allocator(threads=1),
            bench_allocator(threads=2), bench_deepdream(size=size, device=device),
            bench_train_options(size=size, device=device),
            roofline_section(blt, pvm[0], pvm[1], threads=torch.get_num_threads())]


def bench(
    size: str = typer.Option("quick", help="quick (CPU sizes) | full (the thesis's batch 50; always on CUDA)"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    repeats: Optional[int] = typer.Option(None, min=1, help="interleaved rounds (default 3 on CPU, 10 on CUDA)"),
    out: Optional[Path] = typer.Option(None, help="file to write (default bench/results.md; bench/results-cuda.md on CUDA)"),
) -> None:
    """Benchmarks measured side by side in one run (docs/benchmarks.md); writes bench/results.md."""
    import torch

    from predvis.bench.gopc import bench_gopc
    from predvis.run import atomic_write_text

    if size not in ("quick", "full"):
        raise PredvisError(f"--size: must be quick or full, got '{size}'")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise PredvisError(f"--device: expected cpu, cuda or cuda:N, got '{device}'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PredvisError("--device cuda asked for, but CUDA is not available")
    from predvis.allocator import tune_cpu_allocator

    tune_cpu_allocator()  # time what predvis train runs; the allocator section compares both in child processes
    full = size == "full" or dev.type == "cuda"
    batch = 50 if full else 10
    rounds = repeats or (10 if dev.type == "cuda" else 3)
    text = machine_header(dev)
    if not full:
        text += f"CPU sizes: batch {batch} instead of the thesis's 50 (`BENCH=full` for batch 50).\n\n"
    section, _ = bench_gopc(batch, rounds, dev)
    print(section)
    text += section + "\n"
    for extra in optional_sections(size, dev):
        print(extra)
        text += extra + "\n"
    path = out or Path("bench") / ("results-cuda.md" if dev.type == "cuda" else "results.md")
    atomic_write_text(path, text)
    print(f"wrote {path}")
