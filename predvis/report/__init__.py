"""``predvis report PATH``: one HTML page to browse a run, a folder of runs or a tables folder (docs/report.md).

- a run directory -> ``<run>/report.html``: config, environment, loss, tables, figures and every probe
  output under it (predict, dream, lesion, occlude, ...), then the runs made from it that sit beside it
  (sleep runs, deepdream runs on it, comparisons that read it), linked both ways;
- a folder of runs (``runs/``, ``runs/pvm``, a collector's run root) -> ``<folder>/report.html``: an
  overview of the runs, then each run as above, with links between runs (a sleep run and its source, a
  comparison and the runs it read);
- a tables folder (``tables/quick``) -> ``<folder>/index.html``: every markdown file of it rendered,
  README.md first, the links between them kept in the page.

:mod:`~predvis.report.gather` reads the folders, :mod:`~predvis.report.render` writes the page,
:mod:`~predvis.report.markdown` turns predvis's markdown into HTML.
"""
from __future__ import annotations

from pathlib import Path

from predvis.errors import PredvisError

REPORT_NAME = "report.html"
TABLES_NAME = "index.html"


def default_out(path: Path, kind: str) -> Path:
    return Path(path) / (TABLES_NAME if kind == "tables" else REPORT_NAME)


def write_report(path: Path, out: Path | None = None) -> Path:
    """Write the report of ``path`` (a run, a folder of runs, or a tables folder) atomically; returns its path."""
    from predvis.progress import progress
    from predvis.report.gather import find_runs, made_from, read_folder, what
    from predvis.report.render import Page, runs_page, tables_page
    from predvis.run import atomic_write_text

    path = Path(path)
    kind = what(path)
    out = Path(out) if out is not None else default_out(path, kind)
    if out.exists() and out.is_dir():
        raise PredvisError(f"report: --out {out} is a folder; give a file name ending in .html")
    if not out.parent.is_dir():
        raise PredvisError(f"report: the folder of --out {out} does not exist")
    label = path.resolve().name
    if kind == "tables":
        page = Page(out, f"Tables: {label}")
        body = tables_page(page, path)
        subtitle = f"every markdown file of {path}"
    else:
        runs = [path] + made_from(path) if kind == "run" else find_runs(path)
        folders = [read_folder(r) for r in progress(runs, "reading runs", total=len(runs))]
        page = Page(out, f"Run {folders[0].name}" if kind == "run" else f"Runs in {label}")
        body = runs_page(page, folders)
        probes = sum(len(f.children) for f in folders)
        subtitle = (f"{len(folders[0].children)} probe output(s) under {path}, {len(folders) - 1} run(s) made from it"
                    if kind == "run" else f"{len(folders)} run(s), {probes} probe output(s) under {path}")
    atomic_write_text(out, page.html(body, subtitle))
    return out


__all__ = ["write_report", "default_out", "REPORT_NAME", "TABLES_NAME"]
