"""The one user-facing error type.

Anything a user can get wrong (a file, a key, a value, a path, a checkpoint) raises
:class:`PredvisError` with a single line that names the culprit. The CLI prints that line
to stderr and exits with status 2; it never shows a traceback for these.
"""
from __future__ import annotations


class PredvisError(Exception):
    """A problem the user can fix; ``str(err)`` is one line naming the culprit."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(PredvisError):
    """A bad experiment file, key, type or value."""


class DataError(PredvisError):
    """A missing or unreadable data path or file."""


class RunError(PredvisError):
    """A missing run, an unreadable or truncated checkpoint, a run that cannot be resumed."""


class TrainingDiverged(PredvisError):
    """Loss became NaN or inf; the last good checkpoint is kept."""

    exit_code = 3


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, after cleaning up; ``str(err)`` says what was kept or discarded. A KeyboardInterrupt, so every
    handler of Ctrl-C still sees it (the CLI exits with status 130). Make it with :func:`interrupted`."""


def interrupted(message: str) -> Interrupted:
    """Print ``interrupted: <message>`` on stderr now (the CLI framework turns Ctrl-C into exit status 130
    without a message of its own) and return the exception to raise."""
    import sys

    print(f"interrupted: {message}", file=sys.stderr, flush=True)
    return Interrupted(message)
