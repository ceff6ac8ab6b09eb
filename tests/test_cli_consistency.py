"""One command line: the runs root is --runs everywhere (--out kept as a hidden alias where it was the
name), RUN defaults to the newest finished run the command can use (any model) announced as ``using RUN``,
predict takes --flags, --quiet leaves only the result path."""
import json
import shutil
from pathlib import Path

import click
import pytest
import typer

from predvis.cli import app, main
from predvis.run_choice import newest_usable

ROOTED = ("train", "predict", "dream", "lesion", "occlude", "sleep", "deepdream", "compare")


def _command(name: str) -> click.Command:
    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("name", ROOTED)
def test_runs_root_is_called_runs_on_every_command(name):
    opts = {o: p for p in _command(name).params for o in getattr(p, "opts", [])}
    assert "--runs" in opts and not opts["--runs"].hidden
    assert "--out" not in opts or opts["--out"].hidden  # the old name, still accepted, not advertised


@pytest.mark.parametrize("name", ROOTED)
def test_every_command_takes_quiet(name):
    assert any("--quiet" in getattr(p, "opts", []) for p in _command(name).params)


@pytest.mark.bad_input("refused")
def test_out_is_an_alias_of_runs_and_both_must_agree(tmp_path, capsys):
    args = ["train", "gopc1", "--profile", "smoke", "--dry-run"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--runs", str(tmp_path / "a"), "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main([*args, "--runs", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 2
    assert "--out is the old name of --runs" in capsys.readouterr().err


def _copy(run: Path, root: Path, name: str, **changes) -> Path:
    dest = root / run.parent.name / name
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("predict", "dream", "lesion", "occlude"))
    if "state" in changes:
        (dest / "status.json").write_text(json.dumps({"state": changes["state"]}))
    if "method" in changes:
        text = (dest / "config.yaml").read_text().replace(f"method: {changes['from']}", f"method: {changes['method']}")
        (dest / "config.yaml").write_text(text)
    return dest


@pytest.fixture(scope="module")
def root(smoke_runs, tmp_path_factory):
    """Runs by creation stamp: PVM (oldest), GOPC-1, then newer ones no probe can use."""
    base = tmp_path_factory.mktemp("choice")
    _copy(smoke_runs["pvm"], base, "20260101-000000_aaaaaa")
    _copy(smoke_runs["gopc1"], base, "20260102-000000_bbbbbb")
    _copy(smoke_runs["gopc1"], base, "20260103-000000_cccccc", state="running")
    _copy(smoke_runs["gopc1"], base, "20260104-000000_dddddd", method="classifier", **{"from": "gopc"})
    nockpt = _copy(smoke_runs["gopc1"], base, "20260105-000000_eeeeee")
    shutil.rmtree(nockpt / "checkpoints")
    return base


def test_default_run_is_the_newest_usable_of_any_model(root):
    assert newest_usable(root, "stepper", "dream").name == "20260102-000000_bbbbbb"
    assert newest_usable(root, "unlearning", "sleep").name == "20260102-000000_bbbbbb"
    assert newest_usable(root, "stepper", "lesion", ("feedback",)).name == "20260101-000000_aaaaaa"


@pytest.mark.bad_input("refused")
def test_no_usable_run_is_one_line(tmp_path, capsys):
    assert main(["dream", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no finished run of a stepping model under") and "\n" not in err


def test_omitted_run_is_announced_and_predict_takes_flags(root, capsys):
    assert main(["predict", "--runs", str(root), "--limit", "2", "--figures", "1", "--context", "3"]) == 0
    out, err = capsys.readouterr()
    chosen = root / "gopc1" / "20260102-000000_bbbbbb"
    assert f"using {chosen}" in err
    summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["settings"]["limit"] == 2 and summary["settings"]["context"] == 3


@pytest.mark.bad_input("accepted")
def test_old_predict_form_still_works_with_a_note(root, capsys):
    run = root / "gopc1" / "20260102-000000_bbbbbb"
    assert main(["predict", str(run), "limit=2", "figures=1"]) == 0
    assert "note: predict KEY=VALUE is deprecated; use --limit 2 --figures 1" in capsys.readouterr().err
    assert main(["predict", str(run), "limit=2", "--limit", "3"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_predict_help_example_is_accepted(capsys):
    assert main(["predict", "--help"]) == 0
    example = next(line for line in capsys.readouterr().out.splitlines() if "Example:" in line)
    assert "--limit" in example and "=" not in example


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_leaves_only_the_result_path(root, capsys, where):
    run = root / "pvm" / "20260101-000000_aaaaaa"
    argv = ["lesion", "--disable", "feedback", "--limit", "1", "--runs", str(root)]
    assert main(["--quiet", *argv] if where == "before" else [*argv, "-q"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(out.strip().splitlines()) == 1 and out.startswith(str(run / "lesion"))
    assert main(argv) == 0  # the next command is not quiet
    assert f"using {run}" in capsys.readouterr().err
