"""``predvis study NAME``: the studies, each one command of its own module (docs/reproduce.md)."""
from __future__ import annotations

import typer

from predvis.studies import depth_inversion, gopc2_stability, quadratic_probe

study_app = typer.Typer(help="Run a study: many models trained through the job runner, one table "
                             "(docs/depth_inversion.md, docs/models.md).", no_args_is_help=True)
study_app.command("depth_inversion")(depth_inversion.command)
study_app.command("gopc2_stability")(gopc2_stability.command)
study_app.command("quadratic_probe")(quadratic_probe.command)


def invoke(name: str, argv: list[str]) -> int:
    """Run ``predvis study NAME ARGV`` in this process and return its exit status (the collector runs its
    study cells this way). Bad options raise a PredvisError, as on the command line; Ctrl-C reaches the
    caller as KeyboardInterrupt (click's own main would turn it into an exit status)."""
    import click

    from predvis.errors import PredvisError

    command = typer.main.get_command(study_app)
    try:
        with command.make_context("predvis study", [name, *argv]) as ctx:
            code = command.invoke(ctx)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as err:
        raise PredvisError(err.format_message()) from None
    return code if isinstance(code, int) else 0
