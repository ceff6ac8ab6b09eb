"""Host memory allocator settings that make CPU training steps cheaper without changing a number.

A training step allocates and frees the same activation buffers every step. With glibc's defaults,
a buffer above the (dynamic) mmap threshold is mapped fresh from the kernel on each allocation and
unmapped when freed, and the top of the heap is trimmed back to the kernel as soon as 128 KiB are
free: every step then touches its activations in new pages, one page fault per 4 KiB. On this
project's virtual machine that cost 30-45% of a small model's step (docs/training.md, "Host
allocator"). Raising both thresholds keeps freed buffers in the heap for reuse, as the allocators
recommended for CPU training (jemalloc, tcmalloc) do.

Effect: same arithmetic (bit-identical results); the process keeps up to ``TRIM`` bytes of freed
memory instead of returning it, so its resident size stays near its peak. ``PREDVIS_SYSTEM_MALLOC=1``
leaves the allocator as it is. Other C libraries (musl, macOS, Windows) are left alone.
"""
from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1   # mallopt parameter numbers (glibc malloc.h)
M_MMAP_THRESHOLD = -3
MMAP = 1 << 30          # allocations below 1 GiB come from the heap (glibc may cap this at 32 MiB)
MMAP_FALLBACK = 32 << 20
TRIM = 1 << 30          # free heap memory is returned to the kernel only above 1 GiB

_state: dict[str, str] = {}


def _libc():
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""   # 'glibc 2.36' where glibc is the C library
    except (AttributeError, ValueError, OSError):
        glibc = ""
    if platform.system() != "Linux" or not glibc.startswith("glibc"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")   # glibc's soname on every Linux architecture it supports
    except OSError:
        return None


def tune_cpu_allocator() -> str:
    """Set glibc's mmap and trim thresholds once per process; returns what was done, for env.json."""
    if "done" in _state:
        return _state["done"]
    if os.environ.get("PREDVIS_SYSTEM_MALLOC", "") not in ("", "0"):
        _state["done"] = "system (PREDVIS_SYSTEM_MALLOC set)"
        return _state["done"]
    libc = _libc()
    if libc is None:
        _state["done"] = "system (not glibc)"
        return _state["done"]
    mmap = MMAP if libc.mallopt(M_MMAP_THRESHOLD, MMAP) == 1 else MMAP_FALLBACK
    if mmap == MMAP_FALLBACK:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_FALLBACK)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM)
    _state["done"] = f"glibc: mmap threshold {mmap >> 20} MiB, trim threshold {TRIM >> 20} MiB"
    return _state["done"]


def allocator_state() -> str:
    """What :func:`tune_cpu_allocator` did in this process ("system" if it was not called)."""
    return _state.get("done", "system")
