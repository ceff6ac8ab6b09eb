"""The ``predvis`` command line. Each subcommand parses its arguments and calls one function.

User mistakes raise :class:`predvis.errors.PredvisError`; :func:`main` prints them as one line
(``error: ...``) on stderr and exits non-zero, without a traceback.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

import typer

from predvis.errors import PredvisError

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # every subcommand inherits it
    help="predvis: train predictive models of vision, then probe them (dream, lesion, occlude, sleep, deepdream).",
)


def _print_version(value: bool) -> None:
    if value:
        from predvis import __version__

        print(f"predvis {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print predvis's version and exit"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars or info lines: only the result "
                               "path, warnings and errors (also accepted after any command)"),
) -> None:
    """Options that come before the command."""
    from predvis.progress import set_quiet

    set_quiet(quiet)


OVERRIDES = typer.Argument(None, help="KEY=VALUE overrides, e.g. train.epochs=3 model.kind=vae1")
DEFAULT_RUNS = Path("runs")
# the runs root is --runs on every command; --out, its old name on train, sleep and compare, still works
RUNS = typer.Option(None, "--runs", help="root folder of run directories (default: runs)")
OUT_ALIAS = typer.Option(None, "--out", hidden=True, help="old name of --runs")
QUIET = typer.Option(False, "--quiet", "-q", help="no progress bars or info lines: only the result path and errors")


def _runs_root(runs: Optional[Path], out: Optional[Path], default: Optional[Path] = DEFAULT_RUNS) -> Optional[Path]:
    """The runs root from --runs or its hidden alias --out (both at once must agree)."""
    if runs is not None and out is not None and runs != out:
        raise PredvisError(f"--runs {runs} and --out {out} name the same setting (--out is the old name of "
                           "--runs); give it once")
    chosen = runs if runs is not None else out
    return chosen if chosen is not None else default


def _quiet(quiet: bool) -> None:
    """A command's own --quiet (the global one, before the command, is applied by the callback)."""
    if quiet:
        from predvis.progress import set_quiet

        set_quiet(True)


@app.command()
def train(
    experiment: Optional[str] = typer.Argument(None, help="experiment name in experiments/ (e.g. gopc1) or a YAML "
                                               "path; optional with --resume (the run knows its own)"),
    overrides: Optional[List[str]] = OVERRIDES,
    profile: Optional[str] = typer.Option(None, help="smoke | quick | full | long (default: full with CUDA, else quick)"),
    runs: Optional[Path] = RUNS,
    out: Optional[Path] = OUT_ALIAS,
    resume: Optional[Path] = typer.Option(None, help="continue this run directory from its last checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build data and model (with --resume: load the checkpoint), "
                                 "print config and params, write nothing"),
    force: bool = typer.Option(False, "--force", help="with --resume: train on although config.yaml was edited "
                               "since the run began (recorded in the run's resumes.json)"),
    quiet: bool = QUIET,
) -> None:
    """Train an experiment; the last line printed is the run directory."""
    from predvis.config import default_profile, parse_overrides
    from predvis.experiment import load_experiment
    from predvis.train import loop

    _quiet(quiet)
    root = _runs_root(runs, out)

    if resume is not None:
        if overrides:
            raise PredvisError("--resume continues a run with its saved config; drop the KEY=VALUE overrides")
        if runs is not None or out is not None:
            raise PredvisError("--resume continues RUN in its own folder; drop --runs")
        resumed = loop.resume(resume, dry_run=dry_run, experiment=experiment, profile=profile, force=force)
        if resumed is not None:
            print(resumed)
        return
    if force:
        raise PredvisError("--force only applies with --resume RUN")
    if experiment is None:
        raise PredvisError("name an experiment (e.g. predvis train gopc1; list: predvis train -h) or continue a run "
                           "with --resume RUN")
    chosen = profile or default_profile()
    cfg = load_experiment(experiment, chosen, overrides or [])
    if profile is None:
        loop.console.print(f"no --profile given: using '{chosen}' ({'CUDA found' if chosen == 'full' else 'no CUDA'})")
    from predvis.runtime import distributed

    try:
        path = loop.train(cfg, root, parse_overrides(overrides or []), dry_run=dry_run)
        main = distributed.is_main()
    finally:
        distributed.shutdown()
    if path is not None and main:
        print(path)


@app.command()
def predict(
    run: Optional[Path] = typer.Argument(None, help="a run directory made by predvis train (default: the newest "
                                         "finished run of a frame-predicting model under --runs)"),
    legacy: Optional[List[str]] = typer.Argument(None, hidden=True, metavar="KEY=VALUE",
                                                 help="old form of the options (deprecated)"),
    context: Optional[int] = typer.Option(None, help="observed frames before the prior prediction "
                                          "(default: the run's eval.context)"),
    limit: Optional[int] = typer.Option(None, help="use only the first N test sequences"),
    figures: Optional[int] = typer.Option(None, help="sequences drawn in the grids and GIFs"),
    runs: Optional[Path] = RUNS,
    quiet: bool = QUIET,
) -> None:
    """Evaluate a trained run on its test split: tables, per-frame metrics, grids and GIFs.

    Example: predvis predict runs/gopc1/20261125-120000_ab12cd --limit 100 --context 5
    """
    from predvis.probes.predict import predict as run_predict

    _quiet(quiet)
    opts = {"context": context, "limit": limit, "figures": figures}
    if run is not None and "=" in run.name and not run.exists():  # predict limit=5: the old form, RUN omitted
        legacy, run = [str(run), *(legacy or [])], None
    note = None
    if legacy:
        opts, note = _legacy_predict_options(legacy, opts)
    result = run_predict(_pick_run(run, runs, "predict"), **opts)
    if note:  # after the work, so that a bad value stays a single error line
        from predvis.progress import info

        info(note)
    print(result)


def _legacy_predict_options(items: list[str], flags: dict) -> tuple[dict, str]:
    """predict's old ``context=5 limit=10 figures=2`` form, still read, merged with the flags; returns them
    and the deprecation note to show."""
    from predvis.config import parse_overrides

    given = _probe_options(parse_overrides(items), {"context": int, "limit": int, "figures": int})
    for key, value in given.items():
        if flags[key] is not None and flags[key] != value:
            raise PredvisError(f"--{key} {flags[key]} and {key}={value} disagree; give --{key} once")
        flags[key] = value
    return flags, "note: predict KEY=VALUE is deprecated; use " + " ".join(f"--{k} {v}" for k, v in given.items())


RUN_OPT = typer.Argument(None, help="a run directory (default: the newest finished run under --runs that the "
                         "command can use, of any model; printed as 'using RUN')")


def _pick_run(run: Optional[Path], runs: Optional[Path], probe: str, pathways: tuple = ()) -> Path:
    """``run``, else the newest run under the runs root that the registered ``probe`` can use (its ``needs``)."""
    from predvis.probes.registry import get_probe
    from predvis.run_choice import pick_run

    spec = get_probe(probe)
    return pick_run(run, runs if runs is not None else DEFAULT_RUNS, spec.needs, spec.command.removeprefix("predvis ").replace(" RUN", ""),
                    pathways)


@app.command()
def dream(
    run: Optional[Path] = RUN_OPT,
    steps: int = typer.Option(500, help="closed-loop steps after priming"),
    prime: int = typer.Option(10, help="real frames before the loop closes"),
    from_file: Optional[Path] = typer.Option(None, "--from", help="prime from this video / image folder"),
    frame: Optional[int] = typer.Option(None, help="prime with this one frame repeated --prime times"),
    spot: bool = typer.Option(False, "--spot", help="dream only inside a central spot; real input elsewhere"),
    size: Optional[int] = typer.Option(None, help="spot size in pixels (default: a third of the frame)"),
    where: Optional[str] = typer.Option(None, help="spot centre X,Y in pixels (default: the centre)"),
    every: Optional[int] = typer.Option(None, help="put every Nth step in gifs/dream.gif (default: at most 300 frames)"),
    runs: Optional[Path] = RUNS,
    quiet: bool = QUIET,
) -> None:
    """Feed the model its own predictions (closed loop); writes frames, a GIF and metrics/dream.csv."""
    from predvis.probes.common import parse_where
    from predvis.probes.dream import run_dream

    _quiet(quiet)
    print(run_dream(_pick_run(run, runs, "dream"), steps, prime, from_file, frame, spot, size, parse_where(where),
                    every=every))


@app.command()
def lesion(
    run: Optional[Path] = RUN_OPT,
    disable: str = typer.Option(..., help="pathways to switch off: feedback | lateral | feedback,lateral | prior"),
    freeze_learning: bool = typer.Option(True, "--freeze-learning/--keep-learning", help="freeze online learning (default)"),
    limit: Optional[int] = typer.Option(None, help="use only the first N held-out sequences"),
    runs: Optional[Path] = RUNS,
    quiet: bool = QUIET,
) -> None:
    """Per-layer prediction error intact vs lesioned on the same held-out frames (tables/lesion.md)."""
    from predvis.probes.lesion import run_lesion

    _quiet(quiet)
    names = tuple(n.strip() for n in disable.split(",") if n.strip())
    print(run_lesion(_pick_run(run, runs, "lesion", names), disable, freeze_learning, limit))


@app.command()
def occlude(
    run: Optional[Path] = RUN_OPT,
    mode: str = typer.Option("blindspot", help="blindspot (grey spot) | surround (only the spot shown) | depth-invert"),
    size: Optional[int] = typer.Option(None, help="spot size in pixels (default: half the frame)"),
    where: Optional[str] = typer.Option(None, help="spot centre X,Y in pixels (default: the centre)"),
    shape: str = typer.Option("square", help="square | disc"),
    limit: Optional[int] = typer.Option(None, help="use only the first N held-out sequences"),
    test_set: str = typer.Option("held-out", "--set", help="depth-invert: held-out | seen | additive | three"),
    runs: Optional[Path] = RUNS,
    quiet: bool = QUIET,
) -> None:
    """Fill-in error in the hidden region for intact and lesioned models (tables/occlude.md);
    --mode depth-invert: a depth_inversion run's loss per step and figures on a test set."""
    from predvis.probes.common import parse_where
    from predvis.probes.occlude import run_occlude

    if mode == "depth-invert":
        from predvis.probes.depth_invert import run_depth_invert

        _quiet(quiet)
        print(run_depth_invert(_pick_run(run, runs, "depth_invert"), test_set, limit))
        return

    _quiet(quiet)
    print(run_occlude(_pick_run(run, runs, "occlude"), mode, size, parse_where(where), shape, limit))


@app.command()
def sleep(
    run: Optional[Path] = typer.Argument(None, help="a run directory of a stepping model (PVM, GOPC-1, VAE-1, ...; "
                                         "default: the newest finished one under --runs)"),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE settings, e.g. noise=8 grey=3 real=6 wake_epochs=0.05"),
    cycles: int = typer.Option(5, help="sleep cycles (dream, unlearn the attractors found, wake)"),
    dream_steps: int = typer.Option(100, "--dream-steps", help="closed-loop steps per dream"),
    rate: Optional[float] = typer.Option(None, help="unlearning rate as a fraction of the model's own learning rate "
                                         "(default: the model's: PVM 1.0, GOPC family 0.005)"),
    wake: bool = typer.Option(True, "--wake/--no-wake", help="normal learning on real data after each cycle"),
    runs: Optional[Path] = typer.Option(None, "--runs", help="runs root: where RUN is looked for when omitted, "
                                        "and where the new run goes (default: the source run's root)"),
    out: Optional[Path] = OUT_ALIAS,
    quiet: bool = QUIET,
) -> None:
    """Unlearn the attractors that dreams fall into; writes a NEW run (tables/sleep.md), the source untouched."""
    from predvis.config import parse_overrides
    from predvis.probes.sleep import run_sleep

    _quiet(quiet)
    root = _runs_root(runs, out, default=None)
    source = _pick_run(run, root, "sleep")
    print(run_sleep(source, cycles, dream_steps, rate, wake, parse_overrides(overrides or []), root))


def _probe_options(values: dict, allowed: dict[str, type]) -> dict:
    from predvis.config import coerce, suggest

    out = {}
    for key, value in values.items():
        if key not in allowed:
            raise PredvisError(f"unknown option '{key}'{suggest(key, list(allowed))}; known: {', '.join(allowed)}")
        out[key] = coerce(value, allowed[key], key)
    return out


@app.command()
def deepdream(
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE knobs, e.g. dream.steps=20 video.layers=[all]"),
    experiment: str = typer.Option("deepdream", help="deepdream settings file (name in experiments/ or a YAML path)"),
    profile: str = typer.Option("quick", help="smoke | quick | full"),
    mode: Optional[str] = typer.Option(None, help="still | zoom | video | attack (default: the file's)"),
    model: Optional[str] = typer.Option(None, help="classifier | RUN_DIR | torchvision:ARCH | package.module:attr"),
    weights: Optional[Path] = typer.Option(None, help="local weights file for torchvision / imported models"),
    image: Optional[str] = typer.Option(None, help="start image: a scikit-image photo name, a file, or noise"),
    objective: Optional[str] = typer.Option(None, help="e.g. conv3, conv3:5, class:7, guide:conv2, 'conv2 + 0.5*conv3:4'"),
    list_layers: bool = typer.Option(False, "--list-layers", help="print the model's layer names and shapes, then stop"),
    runs: Optional[Path] = typer.Option(None, "--runs", help="where runs are found (model classifier) and written "
                                        "(default: runs)"),
    quiet: bool = QUIET,
) -> None:
    """Dream on a layer (still image, zoom video, user video) or attack the classifier; prints the run directory."""
    from predvis.probes.deepdream.command import describe_layers, run_deepdream
    from predvis.probes.deepdream.settings import load_settings

    flags = {"mode": mode, "model.source": model, "model.weights": weights, "image.source": image,
             "dream.objective": objective}
    items = list(overrides or []) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    from predvis.config import parse_overrides

    _quiet(quiet)
    runs = runs if runs is not None else DEFAULT_RUNS
    cfg = load_settings(experiment, profile, items)
    if list_layers:
        print(describe_layers(cfg, runs))
        return
    print(run_deepdream(cfg, runs, parse_overrides(items)))


@app.command()
def compare(
    runs: List[Path] = typer.Argument(..., help="run directories, probe output folders, or folders that hold runs"),
    by: Optional[str] = typer.Option(None, "--by", help="also group by this dotted config key, e.g. model.kind or train.lr"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="report only this metric (repeatable; globs like 'predict.*.mse')"),
    root: Optional[Path] = typer.Option(None, "--runs", help="root folder of the output run directory "
                                        "(<runs>/compare/...; default: runs)"),
    out: Optional[Path] = OUT_ALIAS,
    quiet: bool = QUIET,
) -> None:
    """Runs side by side: mean, std and n over seeds, flags, tables and plots (docs/compare.md)."""
    from predvis.compare import compare as run_compare

    _quiet(quiet)
    print(run_compare(runs, by, metric or None, _runs_root(root, out)))


@app.command()
def report(
    path: Path = typer.Argument(..., help="a run directory, a folder of runs, or a tables/<profile>/ folder"),
    out: Optional[Path] = typer.Option(None, help="HTML file to write (default: PATH/report.html; "
                                       "PATH/index.html for a tables folder)"),
) -> None:
    """One self-contained HTML page of a run and its probes, of a folder of runs, or of a tables folder."""
    from predvis.report import write_report

    print(write_report(path, out))


# reproduce, study and bench: their commands live with what they run
from predvis.bench.command import bench  # noqa: E402
from predvis.reproduce.command import reproduce  # noqa: E402
from predvis.studies.command import study_app  # noqa: E402

app.command()(reproduce)
app.add_typer(study_app, name="study")
app.command()(bench)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit status.

    Usage errors (a missing argument, an unknown option) are reported by Typer itself, with
    exit status 2.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    for arg in args:
        if not _is_utf8(arg):
            print(f"error: argument '{_printable(arg)}' is not valid UTF-8; predvis takes UTF-8 paths and values",
                  file=sys.stderr)
            return 2
    with _sigterm_as_interrupt() as terminated:
        code = _run(args)
    return 143 if terminated and code == 130 else code


def _run(args: list[str]) -> int:
    try:
        app(args=args, standalone_mode=True)
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except PredvisError as err:
        print(f"error: {_printable(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


class _Terminated(list):
    """Truthy once SIGTERM arrived (a list, so the handler can mark it)."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a batch scheduler's time limit) is handled like Ctrl-C: training marks its run
    ``interrupted`` and keeps the last checkpoint, probes discard their half-written folder; the exit status
    is then 143 (128 + SIGTERM). Only the main thread can install a signal handler; elsewhere nothing changes."""
    terminated = _Terminated()
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def handler(signum, frame):
        if not terminated:
            terminated.append(signum)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_utf8(text: str) -> bool:
    """False for a string holding bytes that were not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """``text`` with non-UTF-8 bytes shown as ``\\xNN``, safe to print on any terminal."""
    if _is_utf8(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def entry() -> None:
    sys.exit(main())
