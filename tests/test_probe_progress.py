"""lesion and occlude show a progress bar over every model step they take (none under --quiet)."""
import io
import re

import pytest
from rich.console import Console

from predvis import progress
from predvis.cli import main


@pytest.fixture
def terminal(monkeypatch):
    """The bars' console writing to a buffer that claims to be a terminal (so rich draws them)."""
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=buffer, force_terminal=True, width=120))
    return buffer


@pytest.mark.parametrize("argv, label", [
    (["lesion", "--disable", "feedback", "--limit", "2"], "lesion: intact, then lesioned"),
    (["occlude", "--size", "6", "--limit", "2"], "occlude (blindspot): 4 conditions"),
])
def test_probe_loops_show_a_bar_that_reaches_its_total(smoke_runs, terminal, capsys, argv, label):
    assert main([argv[0], str(smoke_runs["pvm"]), *argv[1:]]) == 0
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", terminal.getvalue())
    assert label in shown
    done = re.findall(r"(\d+)/(\d+)", shown)
    assert done and done[-1][0] == done[-1][1] != "0", shown[-300:]


def test_no_bar_under_quiet(smoke_runs, terminal, capsys):
    assert main(["--quiet", "lesion", str(smoke_runs["pvm"]), "--disable", "feedback", "--limit", "2"]) == 0
    assert "lesion: intact" not in terminal.getvalue()
