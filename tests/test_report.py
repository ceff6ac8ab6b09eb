"""predvis report: one HTML page of a run and its probe outputs, of a folder of runs, of a tables folder;
the committed tables link only to committed files."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from html_check import counts, problems
from predvis.cli import main
from predvis.report.markdown import to_html

REPO = Path(__file__).resolve().parent.parent


def _report(args, capsys) -> Path:
    assert main(["report", *map(str, args)]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_run_report_shows_the_run_and_every_probe_output(report_runs, capsys):
    run = report_runs["pvm"]
    page = _report([run], capsys)
    assert page == run / "report.html"
    text = page.read_text()
    assert problems(page) == []
    for kind in ("predict", "dream"):
        (out,) = (run / kind).iterdir()
        assert f'id="{kind}-{kind}-{out.name.replace("_", "-")}"' in text, kind      # a section per probe output
        assert out.name in text
    # the sleep run made from it (beside it, under the same run root) follows, linked both ways
    slept = report_runs["slept"]
    assert f'made from this run: <a href="#run-pvm-sleep-{slept.name.replace("_", "-")}">' in text
    assert f'<p>made from <a href="#run-pvm-{run.name.replace("_", "-")}">' in text
    assert "Prior prediction" in text                             # predict's tables/prior.md rendered
    assert "<table>" in text and "gifs/dream.gif" in text
    assert text.count("data:image/gif;base64,") >= 2               # GIFs embedded
    assert "experiment</dt><dd>pvm" in text and "command: <code>" in text
    # no plots/loss.png in this run: the last rows of metrics/train.csv instead
    if not (run / "plots" / "loss.png").exists():
        assert "no loss plot" in text and "val_loss" in text


def test_a_folder_of_many_frames_shows_an_evenly_spaced_sample(report_runs, tmp_path, capsys):
    import shutil

    run = tmp_path / "pvm" / report_runs["pvm"].name
    shutil.copytree(report_runs["pvm"], run, ignore=shutil.ignore_patterns("report.html"))
    (out,) = (run / "dream").iterdir()
    frames = out / "frames"
    for i in range(19):
        shutil.copy(frames / "dream.png", frames / f"copy{i:02d}.png")
    text = _report([run], capsys).read_text()
    assert "(8 of 20, evenly spaced)" in text


def test_folder_report_lists_every_run_and_links_between_them(report_runs, capsys):
    root = report_runs["root"]
    page = _report([root], capsys)
    assert page == root / "report.html"
    text = page.read_text()
    assert problems(page) == []
    for run in (report_runs["pvm"], report_runs["gopc1"]):
        assert f'href="#run-{run.parent.name}-{run.name.replace("_", "-")}"' in text
    assert "<h2>Runs</h2>" in text and counts(page)["images"] >= 4
    # the sleep run and the run it was made from link to each other
    slept, pvm = report_runs["slept"], report_runs["pvm"]
    assert f'made from <a href="#run-pvm-{pvm.name.replace("_", "-")}">pvm/{pvm.name}</a>' in text
    assert f'<a href="#run-pvm-sleep-{slept.name.replace("_", "-")}">pvm-sleep/{slept.name}</a>' in text


def test_tables_report_keeps_links_between_the_tables_in_the_page(tmp_path, capsys):
    tables = tmp_path / "quick"
    shutil.copytree(REPO / "tables" / "quick", tables)
    (tables / "index.html").unlink()
    page = _report([tables], capsys)
    assert page == tables / "index.html"
    text = page.read_text()
    assert problems(page) == []
    for md in tables.glob("*.md"):
        assert f'id="t-{md.stem.replace("_", "-").lower()}"' in text
    assert 'href="#t-gopc-prior"' in text                         # README's link to gopc_prior.md, in the page
    assert "0.0181 ± 4.364e-04" in text                           # a number of tables/quick/gopc_prior.md


def test_out_option_and_bad_paths_are_one_line(report_runs, tmp_path, capsys):
    out = tmp_path / "elsewhere.html"
    assert _report([report_runs["gopc1"], "--out", out], capsys) == out
    assert problems(out) == []                       # images embedded, file links relative to the new place
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for bad, says in ((tmp_path / "missing", "does not exist"), (tmp_path / "file.txt", "is a file"),
                      (tmp_path / "empty", "holds no run")):
        assert main(["report", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: report:") and says in err and "\n" not in err
    assert not (tmp_path / "empty" / "report.html").exists()
    assert main(["report", str(report_runs["gopc1"]), "--out", str(tmp_path / "no" / "such.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_markdown_is_escaped_and_dead_links_are_text(tmp_path):
    (tmp_path / "there.md").write_text("x")
    md = ("# Title <b>\n\ntext with `code<>` and **bold** [ok](there.md) [dead](nowhere/run)\n\n"
          "| a | b |\n|---|---|\n| <script>alert(1)</script> | 1.5 ± 0.2 |\n\n- item [x](there.md)\n")
    out = to_html(md, lambda t: t if (tmp_path / t).exists() else None)
    assert "<script>" not in out and "&lt;script&gt;" in out and "Title &lt;b&gt;" in out
    assert '<a href="there.md">ok</a>' in out and "dead" in out and "nowhere/run" not in out
    assert '<td class="num">1.5 ± 0.2</td>' in out and "<code>code&lt;&gt;</code>" in out
    assert "<strong>bold</strong>" in out and "<li>item <a" in out


def _committed(pattern: str) -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", pattern], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / line for line in listed.stdout.splitlines()]


def test_committed_tables_link_only_to_committed_files():
    """A clone has no runs/: every link of the committed tables (markdown and index.html) resolves to a
    file of the repository; runs are named by run id instead."""
    tracked = set(_committed("*"))
    mds = [p for p in _committed("tables/*.md")]
    assert mds
    for md in mds:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (md.parent / target.split("#")[0]).resolve()
            assert path in tracked, f"{md.relative_to(REPO)} links to {target}, not a committed file"
    pages = _committed("tables/*.html")
    assert REPO / "tables" / "quick" / "index.html" in pages
    for page in pages:
        assert problems(page) == [], page
