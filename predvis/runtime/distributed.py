"""Data-parallel training across processes started by torchrun.

``torchrun --nproc_per_node=N -m predvis train EXP`` sets RANK / WORLD_SIZE / LOCAL_RANK; predvis then
joins a process group (NCCL on CUDA, gloo on the CPU), each rank trains on its shard of every global
batch (``train.batch_size`` is the global batch), gradients are averaged across ranks before each
optimiser step, epoch metrics are averaged, and only rank 0 writes the run directory.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_name: str) -> torch.device | None:
    """Join the process group when started by torchrun; returns this rank's device (or None)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def shard(n: int) -> slice:
    """This rank's contiguous part of ``n`` items (sizes differ by at most one)."""
    w, r = world_size(), rank()
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def average_gradients(parameters, local_weight: float) -> None:
    """Replace each gradient by the weighted sum over ranks (weights = local share of the batch).

    With ``local_weight = local_batch / global_batch`` and per-rank losses that are means over the
    local batch, the result is the gradient of the mean over the global batch.
    """
    if world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads]) * local_weight
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_average(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average scalar tensors over ranks."""
    if world_size() == 1 or not values:
        return values
    keys = list(values)  # every rank inserts the same keys in the same order
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked)
    stacked /= world_size()
    return dict(zip(keys, stacked))


def broadcast_text(text: str | None) -> str:
    """Rank 0's ``text`` on every rank."""
    if world_size() == 1:
        return text or ""
    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
