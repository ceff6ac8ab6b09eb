"""The launcher options shared by ``predvis reproduce`` and ``predvis study`` (docs/scaling.md)."""
from __future__ import annotations

from pathlib import Path

import typer

WORKERS = typer.Option(1, help="jobs at a time: local processes of one thread each, or SLURM jobs queued at once")
LAUNCHER = typer.Option("local", help="local (processes on this machine) | slurm (one SLURM job per job, via submitit)")
PARTITION = typer.Option("", "--slurm-partition", help="SLURM partition (default: the cluster's)")
GPUS = typer.Option(0, "--slurm-gpus", help="GPUs per SLURM job")
CPUS = typer.Option(1, "--slurm-cpus", help="CPUs per SLURM job (also its torch threads)")
TIME = typer.Option("4:00:00", "--slurm-time", help="time limit per SLURM job (MINUTES, HH:MM:SS or D-HH:MM:SS)")
MEM = typer.Option(0, "--slurm-mem", help="memory per SLURM job in GB (0: the partition's default)")


def launcher_from(launcher: str, workers: int, root: Path, partition: str, gpus: int, cpus: int, time: str,
                  mem: int, threads: int = 1):
    """The launcher of a command's options; submitit's files go to ``<root>/.submitit``."""
    from predvis.jobs.launchers import launcher as make

    return make(launcher, workers, threads, Path(root) / ".submitit", partition, gpus, cpus, time, mem)
