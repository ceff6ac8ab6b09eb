"""The ``predvis`` command line. Each subcommand parses its arguments and calls one function.

User mistakes raise :class:`predvis.errors.PredvisError`; :func:`main` prints them as one line
(``error: ...``) on stderr and exits non-zero, without a traceback.
"""
from __future__ import annotations

import sys
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
) -> None:
    """Options that come before the command."""


OVERRIDES = typer.Argument(None, help="KEY=VALUE overrides, e.g. train.epochs=3 model.kind=vae1")


@app.command()
def train(
    experiment: str = typer.Argument(..., help="experiment name in experiments/ (e.g. gopc1) or a YAML path"),
    overrides: Optional[List[str]] = OVERRIDES,
    profile: Optional[str] = typer.Option(None, help="smoke | quick | full | long (default: full with CUDA, else quick)"),
    out: Path = typer.Option(Path("runs"), help="root folder of run directories"),
    resume: Optional[Path] = typer.Option(None, help="continue this run directory from its last checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build data and model (with --resume: load the checkpoint), "
                                 "print config and params, write nothing"),
) -> None:
    """Train an experiment; the last line printed is the run directory."""
    from predvis.config import default_profile, load_experiment, parse_overrides
    from predvis.train import loop

    if resume is not None:
        if overrides:
            raise PredvisError("--resume continues a run with its saved config; drop the KEY=VALUE overrides")
        resumed = loop.resume(resume, dry_run=dry_run)
        if resumed is not None:
            print(resumed)
        return
    chosen = profile or default_profile()
    cfg = load_experiment(experiment, chosen, overrides or [])
    if profile is None:
        loop.console.print(f"no --profile given: using '{chosen}' ({'CUDA found' if chosen == 'full' else 'no CUDA'})")
    from predvis.train import distributed

    try:
        path = loop.train(cfg, out, parse_overrides(overrides or []), dry_run=dry_run)
        main = distributed.is_main()
    finally:
        distributed.shutdown()
    if path is not None and main:
        print(path)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="a run directory made by predvis train"),
    overrides: Optional[List[str]] = OVERRIDES,
) -> None:
    """Evaluate a trained run on its test split: tables, per-frame metrics, grids and GIFs."""
    from predvis.config import parse_overrides
    from predvis.probes.predict import predict as run_predict

    opts = _probe_options(parse_overrides(overrides or []), {"context": int, "limit": int, "figures": int})
    print(run_predict(run, **opts))


RUN_OPT = typer.Argument(None, help="a run directory (default: the newest PVM run under --runs)")
RUNS_OPT = typer.Option(Path("runs"), "--runs", help="root folder searched when RUN is omitted")


def _newest(runs: Path, method: str) -> Path:
    from predvis.run import newest_run

    return newest_run(runs, method=method)


def _pick_run(run: Optional[Path], runs: Path) -> Path:
    return run if run is not None else _newest(runs, "pvm")


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
    runs: Path = RUNS_OPT,
) -> None:
    """Feed the model its own predictions (closed loop); writes frames, a GIF and metrics/dream.csv."""
    from predvis.probes.common import parse_where
    from predvis.probes.dream import run_dream

    print(run_dream(_pick_run(run, runs), steps, prime, from_file, frame, spot, size, parse_where(where),
                    every=every))


@app.command()
def lesion(
    run: Optional[Path] = RUN_OPT,
    disable: str = typer.Option(..., help="pathways to switch off: feedback | lateral | feedback,lateral | prior"),
    freeze_learning: bool = typer.Option(True, "--freeze-learning/--keep-learning", help="freeze online learning (default)"),
    limit: Optional[int] = typer.Option(None, help="use only the first N held-out sequences"),
    runs: Path = RUNS_OPT,
) -> None:
    """Per-layer prediction error intact vs lesioned on the same held-out frames (tables/lesion.md)."""
    from predvis.probes.lesion import run_lesion

    print(run_lesion(_pick_run(run, runs), disable, freeze_learning, limit))


@app.command()
def occlude(
    run: Optional[Path] = RUN_OPT,
    mode: str = typer.Option("blindspot", help="blindspot (grey spot) | surround (only the spot shown) | depth-invert"),
    size: Optional[int] = typer.Option(None, help="spot size in pixels (default: half the frame)"),
    where: Optional[str] = typer.Option(None, help="spot centre X,Y in pixels (default: the centre)"),
    shape: str = typer.Option("square", help="square | disc"),
    limit: Optional[int] = typer.Option(None, help="use only the first N held-out sequences"),
    test_set: str = typer.Option("held-out", "--set", help="depth-invert: held-out | seen | additive | three"),
    runs: Path = RUNS_OPT,
) -> None:
    """Fill-in error in the hidden region for intact and lesioned models (tables/occlude.md);
    --mode depth-invert: a depth_inversion run's loss per step and figures on a test set."""
    from predvis.probes.common import parse_where
    from predvis.probes.occlude import run_occlude

    if mode == "depth-invert":
        from predvis.probes.depth_invert import run_depth_invert

        print(run_depth_invert(run if run is not None else _newest(runs, "depth_inversion"), test_set, limit))
        return

    print(run_occlude(_pick_run(run, runs), mode, size, parse_where(where), shape, limit))


@app.command()
def sleep(
    run: Path = typer.Argument(..., help="a run directory of a stepping model (PVM, GOPC-1, VAE-1, ...)"),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE settings, e.g. noise=8 grey=3 real=6 wake_epochs=0.05"),
    cycles: int = typer.Option(5, help="sleep cycles (dream, unlearn the attractors found, wake)"),
    dream_steps: int = typer.Option(100, "--dream-steps", help="closed-loop steps per dream"),
    rate: Optional[float] = typer.Option(None, help="unlearning rate as a fraction of the model's own learning rate "
                                         "(default: the model's: PVM 1.0, GOPC family 0.005)"),
    wake: bool = typer.Option(True, "--wake/--no-wake", help="normal learning on real data after each cycle"),
    out: Optional[Path] = typer.Option(None, help="runs root for the new run (default: the source run's)"),
) -> None:
    """Unlearn the attractors that dreams fall into; writes a NEW run (tables/sleep.md), the source untouched."""
    from predvis.config import parse_overrides
    from predvis.probes.sleep import run_sleep

    print(run_sleep(run, cycles, dream_steps, rate, wake, parse_overrides(overrides or []), out))


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
    runs: Path = typer.Option(Path("runs"), "--runs", help="where runs are found (model classifier) and written"),
) -> None:
    """Dream on a layer (still image, zoom video, user video) or attack the classifier; prints the run directory."""
    from predvis.probes.deepdream.command import describe_layers, run_deepdream
    from predvis.probes.deepdream.settings import load_settings

    flags = {"mode": mode, "model.source": model, "model.weights": weights, "image.source": image,
             "dream.objective": objective}
    items = list(overrides or []) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    from predvis.config import parse_overrides

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
    out: Path = typer.Option(Path("runs"), help="root folder of the output run directory (<out>/compare/...)"),
) -> None:
    """Runs side by side: mean, std and n over seeds, flags, tables and plots (docs/compare.md)."""
    from predvis.compare import compare as run_compare

    print(run_compare(runs, by, metric or None, out))


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
