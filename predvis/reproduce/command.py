"""``predvis reproduce`` (``make reproduce-tables``): run what is missing, write every paper table."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from predvis.errors import PredvisError
from predvis.jobs import options as jo


def reproduce(
    profile: str = typer.Option("quick", help="collector profile: smoke | quick | full | long"),
    cells: Optional[Path] = typer.Option(None, help="folder of cell files (default: experiments/cells; long: experiments/cells/long)"),
    runs: Optional[Path] = typer.Option(None, help="run root (default: runs/reproduce/<profile>)"),
    tables: Optional[Path] = typer.Option(None, help="output folder (default: tables/<profile>)"),
    only: str = typer.Option("", help="comma list of cell names (file stems) to run"),
    dry_run: bool = typer.Option(False, help="list every job and its status; run nothing"),
    tables_only: bool = typer.Option(False, help="write the tables (and learning curves) of what the runs reached so far; run nothing"),
    workers: int = jo.WORKERS, launcher: str = jo.LAUNCHER, slurm_partition: str = jo.PARTITION,
    slurm_gpus: int = jo.GPUS, slurm_cpus: int = jo.CPUS, slurm_time: str = jo.TIME, slurm_mem: int = jo.MEM,
) -> None:
    """Every paper table: train and probe what is missing, resume what was interrupted, skip what is done."""
    from predvis.config import PROFILES, suggest
    from predvis.reproduce.cells import cells_dir, load_cells
    from predvis.reproduce.collector import collect

    if profile not in PROFILES:
        raise PredvisError(f"--profile: must be smoke, quick, full or long, got '{profile}'{suggest(profile, PROFILES)}")
    root = runs if runs is not None else Path("runs") / "reproduce" / profile
    run_with = jo.launcher_from(launcher, workers, root, slurm_partition, slurm_gpus, slurm_cpus, slurm_time, slurm_mem)
    names = [c.strip() for c in only.split(",") if c.strip()]
    picked = load_cells(cells if cells is not None else cells_dir(profile), profile, names or None)
    out = tables if tables is not None else Path("tables") / profile
    command = ("make reproduce-tables PROFILE=" + profile + (" TABLES_ONLY=1" if tables_only else "")
               + (f" LAUNCHER={launcher}" if launcher != "local" else "")
               if os.environ.get("MAKELEVEL")
               else " ".join(["predvis"] + [shlex.quote(a) for a in sys.argv[1:]]))
    try:
        code = collect(picked, root, out, profile, command, dry=dry_run, launcher=run_with, tables_only=tables_only)
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        raise typer.Exit(130) from None
    if tables is None and not dry_run:
        _top_index(out.parent)
    if code:
        raise typer.Exit(code)


def _top_index(folder: Path) -> None:
    """``tables/README.md``: links to the index of every profile folder present."""
    from predvis.run import atomic_write_text

    lines = ["# Reproduced tables", "", "`make reproduce-tables` (PROFILE=quick, the default) and "
             "`make reproduce-tables PROFILE=full` write one folder per profile (docs/reproduce.md); its "
             "README.md indexes the tables with their cells, status, seeds and commits:", ""]
    for sub in sorted(p for p in folder.iterdir() if (p / "README.md").exists()):
        tables = sorted(p.name for p in sub.glob("*.md") if p.name != "README.md")
        page = f" ([all on one page]({sub.name}/index.html))" if (sub / "index.html").exists() else ""
        lines.append(f"- [{sub.name}]({sub.name}/README.md){page}: "
                     + (", ".join(f"[{t}]({sub.name}/{t})" for t in tables) or "no tables yet"))
    own = sorted(p.name for p in folder.glob("*.md") if p.name != "README.md")
    if own:  # written by a study run by itself (--publish, --table-only); each names its study folder
        lines += ["", "Tables of studies run by themselves (not by the collector; each names its study folder, and "
                  "the docs say how it was run): " + ", ".join(f"[{t}]({t})" for t in own)]
    atomic_write_text(folder / "README.md", "\n".join(lines) + "\n")
