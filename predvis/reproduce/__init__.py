"""``make reproduce-tables``: every paper table from one command (docs/reproduce.md).

    python -m predvis.reproduce [--profile quick|full|smoke|long] [--dry-run] [--tables-only] [--only CELL,...]

One YAML file per table cell in ``experiments/cells/`` (the long profile: ``experiments/cells/long/``) (:mod:`predvis.reproduce.cells`); the
collector (:mod:`predvis.reproduce.collector`) trains and probes what is missing, resumes what was
interrupted, skips what is done, and writes ``tables/<profile>/`` (:mod:`predvis.reproduce.tables`)
with a ``README.md`` index and every number linked to the run it came from.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from predvis.errors import PredvisError


def parse(argv: list[str] | None):
    ap = argparse.ArgumentParser(prog="python -m predvis.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help="collector profile: smoke | quick (default) | full | long")
    ap.add_argument("--cells", type=Path, default=None,
                    help="folder of cell files (default: experiments/cells; long: experiments/cells/long)")
    ap.add_argument("--runs", type=Path, default=None, help="run root (default: runs/reproduce/<profile>)")
    ap.add_argument("--tables", type=Path, default=None, help="output folder (default: tables/<profile>)")
    ap.add_argument("--only", default="", help="comma list of cell names (file stems) to run")
    ap.add_argument("--dry-run", action="store_true", help="list every job and its status; run nothing")
    ap.add_argument("--tables-only", action="store_true",
                    help="write the tables (and learning curves) of what the runs reached so far; run nothing")
    ap.add_argument("--workers", type=int, default=1,
                    help="jobs (and study models) at a time, each in its own one-thread process (default 1)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return _main(args, argv if argv is not None else sys.argv[1:])
    except PredvisError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _main(args, argv: list[str]) -> int:
    from predvis.config import PROFILES, suggest
    from predvis.reproduce.cells import cells_dir, load_cells
    from predvis.reproduce.collector import collect

    if args.profile not in PROFILES:
        raise PredvisError(f"--profile: must be smoke, quick, full or long, got '{args.profile}'{suggest(args.profile, PROFILES)}")
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    cells = load_cells(args.cells if args.cells is not None else cells_dir(args.profile), args.profile, only or None)
    runs = args.runs if args.runs is not None else Path("runs") / "reproduce" / args.profile
    tables = args.tables if args.tables is not None else Path("tables") / args.profile
    command = ("make reproduce-tables PROFILE=" + args.profile + (" TABLES_ONLY=1" if args.tables_only else "")
               if os.environ.get("MAKELEVEL")
               else " ".join(["python -m predvis.reproduce"] + [shlex.quote(a) for a in argv]))
    code = collect(cells, runs, tables, args.profile, command, dry=args.dry_run, workers=args.workers,
                   tables_only=args.tables_only)
    if args.tables is None and not args.dry_run:
        _top_index(tables.parent)
    return code


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
