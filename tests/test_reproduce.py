"""make reproduce-tables: the collector on tiny smoke cells (two seeds), resumable, every number traceable;
the repository's sleep cells (sharing the PVM and GOPC-1 runs) and GOPC-2 stability study cell at smoke size."""
import csv
import json
import re
import statistics
from pathlib import Path

import pytest
import yaml

from predvis.cli import main as cli
from predvis.tables import fmt


def main(argv: list[str]) -> int:
    """``predvis reproduce ARGV``: its exit status."""
    return cli(["reproduce", *argv])


pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


def _cell(folder: Path, name: str, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(json.dumps(fields))   # JSON is YAML


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("reproduce")
    cells = base / "cells"
    for name, exp, row in (("gopc1", "gopc1", "GOPC-1"), ("vae1", "vae1", "VAE-1")):
        _cell(cells, name, tables=["gopc_prediction", "gopc_speed"], row=row, experiment=exp, profile="smoke",
              seeds=[0, 1], overrides=TINY, probes=[{"probe": "predict", "figures": 0}])
    _cell(cells, "later", tables=["sleep"], row="sleep", kind="placeholder", note="not built yet: issue 7")
    args = ["--profile", "smoke", "--cells", str(cells), "--runs", str(base / "runs"), "--tables", str(base / "tables")]
    return {"base": base, "args": args, "runs": base / "runs", "tables": base / "tables"}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _independent(source: Path, field: str) -> float:
    """The number a values.csv field names, read without the collector's code."""
    kind, _, rest = field.partition(":")
    if kind == "json":   # a key, or a path of keys / list indices: mean_sse/held_out
        node = json.loads(source.read_text())
        for part in rest.split("/"):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return float(node)
    if kind == "csv-last":
        return float(_rows(source)[-1][rest])
    if kind == "csv-row":
        cond, col = rest.rsplit(":", 1)
        key, want = cond.split("=", 1)
        (row,) = [r for r in _rows(source) if r[key] == want]
        return float(row[col])
    assert kind == "csv-seqstd"
    cond, col = rest.rsplit(":", 1)
    key, want = cond.split("=")
    per = {}
    for r in _rows(source):
        if r[key] == want:
            per.setdefault(r["sequence"], []).append(float(r[col]))
    return statistics.stdev(statistics.mean(v) for v in per.values())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".reproduce.lock"}


def test_dry_listing_before_anything_ran(setup, capsys):
    assert main(setup["args"] + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gopc1\s+0\s+smoke\s+missing", out) and re.search(r"vae1\s+1\s+smoke\s+missing", out)
    assert re.search(r"later\s+-\s+smoke\s+placeholder\s+not built yet: issue 7", out)
    assert "5 jobs: 4 missing, 1 placeholder" in out
    assert not setup["runs"].exists() and not setup["tables"].exists()


def test_collector_tables_hold_the_numbers_of_the_linked_runs(setup, capsys):
    assert main(setup["args"]) == 0
    capsys.readouterr()
    tables = setup["tables"]
    values = _rows(tables / "values.csv")
    assert {v["file"] for v in values} == {"gopc_recon.md", "gopc_prior.md", "gopc_speed.md"}
    for v in values:
        source = (tables / v["source"]).resolve()
        assert source.is_relative_to(setup["runs"].resolve()) and source.exists()
        assert float(v["value"]) == pytest.approx(_independent(source, v["field"]), rel=1e-6)
    # the aggregate row is the mean over the two seeds of the per-seed numbers
    prior = (tables / "gopc_prior.md").read_text()
    for row in ("GOPC-1", "VAE-1"):
        per_seed = [float(v["value"]) for v in values if v["file"] == "gopc_prior.md" and v["row"] == row
                    and v["quantity"] == "mse"]
        assert len(per_seed) == 2
        line = next(ln for ln in prior.splitlines() if ln.startswith(f"| {row} |"))
        assert f"| {fmt(statistics.mean(per_seed))} ± {fmt(statistics.stdev(per_seed))} |" in line
    # links stay inside the tables folder (committed with it); runs are named by their run id, the path
    # under the run root, and every id names a run directory there
    for md in tables.glob("gopc_*.md"):
        text = md.read_text()
        for target in re.findall(r"\]\(([^)]+)\)", text):
            assert (tables / target).resolve().is_relative_to(tables.resolve()) and (tables / target).exists(), target
        ids = re.findall(r"`([\w.-]+/\d{8}-\d{6}_[0-9a-f]+)`", text)
        assert ids and all((setup["runs"] / i / "config.yaml").exists() for i in ids), (md.name, ids)
    html = (tables / "index.html").read_text()
    assert "gopc_prior.md" in html and 'href="../' not in html and 'src="../' not in html
    speed = (tables / "gopc_speed.md").read_text()
    assert "time per batch, GOPC-1 / VAE-1" in speed and "206" in speed and "1.47 (2.5 / 1.7)" in speed
    index = (tables / "README.md").read_text()
    assert "**not built yet: issue 7**" in index and "[gopc_prior.md](gopc_prior.md)" in index
    assert "gopc1: done; vae1: done" in index
    for run in setup["runs"].glob("*/*_*"):
        assert (run / "cell-done.json").exists()


def test_second_invocation_runs_nothing(setup, capsys):
    index = (setup["tables"] / "README.md").read_text()
    assert "## Time" in index and "| 1 | 4 | finished |" in index   # the first invocation: 4 jobs, one at a time
    before = _snapshot(setup["runs"])
    assert main(setup["args"]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert _snapshot(setup["runs"]) == before
    assert len((setup["runs"] / "invocations.csv").read_text().splitlines()) == 2   # header + the one that ran jobs
    assert main(setup["args"] + ["--dry-run"]) == 0
    assert "5 jobs: 4 done, 1 placeholder" in capsys.readouterr().out


def test_two_workers_give_the_numbers_of_one(setup, tmp_path, capsys):
    """--workers 2 trains the same runs side by side: every MSE equals the one-at-a-time collector's."""
    assert main(setup["args"]) == 0
    args = ["--profile", "smoke", "--cells", str(setup["base"] / "cells"), "--runs", str(tmp_path / "runs"),
            "--tables", str(tmp_path / "tables"), "--workers", "2"]
    assert main(args) == 0
    assert "2 at a time" in capsys.readouterr().err

    def mses(tables: Path) -> dict:
        return {(v["file"], v["row"], v["quantity"], v["seed"]): v["value"] for v in _rows(tables / "values.csv")
                if v["file"] != "gopc_speed.md"}   # seconds differ, MSEs must not

    one, two = mses(setup["tables"]), mses(tmp_path / "tables")
    assert len(one) >= 8 and one == two
    assert main(args) == 0 and "0 to run" in capsys.readouterr().err


def test_slurm_launcher_through_submitit_gives_the_numbers_of_local(setup, tmp_path, capsys):
    """The collector with the SLURM launcher, run by submitit's LocalExecutor (each job a real subprocess):
    every MSE equals the local collector's, and a rerun has nothing to run."""
    pytest.importorskip("submitit")
    from predvis.jobs.launchers import Slurm
    from predvis.reproduce.cells import load_cells
    from predvis.reproduce.collector import collect

    assert main(setup["args"]) == 0
    cells = load_cells(setup["base"] / "cells", "smoke")
    slurm = Slurm(tmp_path / "runs" / ".submitit", workers=2, time="20", cluster="local")
    assert collect(cells, tmp_path / "runs", tmp_path / "tables", "smoke", "test", launcher=slurm) == 0

    def mses(tables: Path) -> dict:
        return {(v["file"], v["row"], v["quantity"], v["seed"]): v["value"] for v in _rows(tables / "values.csv")
                if v["file"] != "gopc_speed.md"}

    one, other = mses(setup["tables"]), mses(tmp_path / "tables")
    assert len(one) >= 8 and one == other
    assert list((tmp_path / "runs" / ".submitit").iterdir())
    capsys.readouterr()
    assert collect(cells, tmp_path / "runs", tmp_path / "tables", "smoke", "test", launcher=slurm) == 0
    assert "0 to run" in capsys.readouterr().err


def test_side_by_side_order_timing_cells_first_then_longest(tmp_path, monkeypatch):
    """--workers: the alone cells run first, one at a time; then the others, the longest (minutes) first."""
    from predvis.jobs import launchers

    cells = tmp_path / "cells"
    _cell(cells, "a_short", tables=["gopc_prediction"], row="GOPC-1", experiment="gopc1", profile="smoke",
          seeds=[0], overrides=TINY, minutes=1)
    _cell(cells, "b_long", tables=["gopc_prediction"], row="VAE-1", experiment="vae1", profile="smoke",
          seeds=[0, 1], overrides=TINY, minutes=30)
    _cell(cells, "c_timed", tables=["gopc_speed"], row="GOPC-1", experiment="gopc1", profile="smoke",
          seeds=[0], overrides=TINY + ["train.epochs=2"], alone=True)
    calls = []
    monkeypatch.setattr(launchers, "run_jobs", lambda fn, items, workers, on_result, threads: calls.append(
        (workers, [f"{g[0].cell.id} {g[0].seed}" for _, (g, _) in items])))
    args = ["--profile", "smoke", "--cells", str(cells), "--runs", str(tmp_path / "runs"), "--tables",
            str(tmp_path / "t"), "--workers", "2"]
    assert main(args) == 0
    assert calls == [(1, ["c_timed 0"]), (2, ["b_long 0", "b_long 1", "a_short 0"])]


def test_interrupted_cell_resumes_in_place(tmp_path, monkeypatch, capsys):
    from predvis.backends.registry import get_method

    cells = tmp_path / "cells"
    _cell(cells, "gopc1", tables=["gopc_speed"], row="GOPC-1", experiment="gopc1", profile="smoke", seeds=[0],
          overrides=TINY + ["train.epochs=2"])
    args = ["--profile", "smoke", "--cells", str(cells), "--runs", str(tmp_path / "runs"), "--tables", str(tmp_path / "t")]
    cls = get_method("gopc")
    original = cls.end_epoch

    def stop_in_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(cls, "end_epoch", stop_in_second_epoch)
    assert main(args) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    monkeypatch.setattr(cls, "end_epoch", original)
    assert main(args + ["--dry-run"]) == 0
    assert re.search(r"gopc1\s+0\s+smoke\s+interrupted\s+1 of 2 epochs, resumable", capsys.readouterr().out)
    assert main(args) == 0
    (run,) = (tmp_path / "runs" / "gopc1").glob("*_*")
    assert [r["epoch"] for r in _rows(run / "metrics" / "train.csv")] == ["1", "2"]
    assert (run / "cell-done.json").exists() and not (tmp_path / "runs" / ".reproduce.lock").exists()


@pytest.mark.parametrize("fields, message", [
    ({"tables": ["gopc_speed"], "row": "x", "experiment": "gopc1", "seed": [0]}, "did you mean 'seeds'"),
    ({"tables": ["gopc_sped"], "row": "x", "experiment": "gopc1"}, "did you mean 'gopc_speed'"),
    ({"tables": ["gopc_speed"], "row": "x", "experiment": "gopc1", "probes": [{"probe": "predikt"}]}, "did you mean 'predict'"),
    ({"tables": ["gopc_speed"], "row": "x", "experiment": "gopc1", "overrides": ["train.epoch=2"]}, "did you mean 'epochs'"),
    ({"tables": ["sleep"], "row": "x", "experiment": "pvm", "probes": [{"probe": "sleep", "settings": ["noyse=2"]}]},
     "did you mean 'noise'"),
    ({"tables": ["gopc2_stability"], "row": "x", "kind": "study", "seeds": [0], "study": {"name": "gopc2_stabilty"}},
     "did you mean 'gopc2_stability'"),
    ({"tables": ["gopc2_stability"], "row": "x", "kind": "study", "seeds": [0],
      "study": {"name": "gopc2_stability", "ref_seed": 1}}, "did you mean 'ref_seeds'"),
    ({"tables": ["gopc2_stability"], "row": "x", "kind": "study", "seeds": [0],
      "study": {"name": "gopc2_stability", "variants": "thesis,mixture-nne"}}, "did you mean 'mixture-none'"),
])
def test_bad_cell_is_one_line_and_runs_nothing(tmp_path, capsys, fields, message):
    _cell(tmp_path / "cells", "bad", **fields)
    args = ["--profile", "smoke", "--cells", str(tmp_path / "cells"), "--runs", str(tmp_path / "runs"),
            "--tables", str(tmp_path / "t")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- the repository's cells

def test_repository_cells_plan_in_every_profile():
    from predvis.reproduce.cells import CELLS_DIR, load_cells
    from predvis.reproduce.collector import plan
    from predvis.studies import gopc2_stability as study

    for profile in ("smoke", "quick", "full"):
        cells = load_cells(CELLS_DIR, profile)
        assert not [c.id for c in cells if c.kind == "placeholder"]
        jobs = {j.cell.id: j for j in plan(cells)}
        # the sleep cells train nothing of their own: their seeds' configs are the PVM and GOPC-1 cells'
        for sleep, source in (("sleep_pvm", "pvm"), ("sleep_gopc1", "gopc1")):
            mine = [j.config for j in plan([c for c in cells if c.id == sleep])]
            theirs = [j.config for j in plan([c for c in cells if c.id == source])]
            assert mine == theirs, (profile, sleep)
        assert jobs["gopc2_stability"].study_meta["profile"] == profile
    quick = {j.cell.id: j for j in plan(load_cells(CELLS_DIR, "quick"))}["gopc2_stability"]
    assert quick.study_meta["jobs"] == study.plan(3, 1, 1, list(study.VARIANTS))   # 3 seeds, every variant
    full = {j.cell.id: j for j in plan(load_cells(CELLS_DIR, "full"))}["gopc2_stability"]
    assert full.study_meta["jobs"] == study.plan(5, 1, 1, list(study.VARIANTS))   # the study's defaults


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_gopc2_study_reference_is_the_gopc1_cells_seed_0(profile):
    """The GOPC-2 study's GOPC-1 reference trains with the config of the gopc1 cell's seed 0 (but for
    train.threads), so make reproduce-tables reuses that run instead of training it again."""
    from predvis.experiment import load_experiment
    from predvis.reproduce.cells import CELLS_DIR, load_cells
    from predvis.reproduce.collector import plan
    from predvis.run import config_apart_from
    from predvis.studies import gopc2_stability as study

    jobs = plan(load_cells(CELLS_DIR, profile))
    meta = next(j for j in jobs if j.cell.id == "gopc2_stability").study_meta
    ref = next(j for j in meta["jobs"] if j["exp"] == "gopc1" and j["seed"] == 0)
    cfg = load_experiment("gopc1", profile, study.job_overrides(ref, 1, meta["short_epochs"], meta["extra"])).to_dict()
    cell = next(j for j in jobs if j.cell.id == "gopc1" and j.seed == 0).config
    assert config_apart_from(cfg) == config_apart_from(cell)


def _repo_args(base: Path, only: str) -> list[str]:
    from predvis.reproduce.cells import CELLS_DIR

    return ["--profile", "smoke", "--cells", str(CELLS_DIR), "--only", only, "--runs", str(base / "runs"),
            "--tables", str(base / "tables")]


def _check_values(tables: Path, runs: Path, name: str) -> list[dict]:
    """Every per-seed value of ``name`` is the number its source file (under the run root) holds."""
    values = [v for v in _rows(tables / "values.csv") if v["file"] == name]
    assert values
    for v in values:
        source = (tables / v["source"]).resolve()
        assert source.is_relative_to(runs.resolve()) and source.exists()
        assert float(v["value"]) == pytest.approx(_independent(source, v["field"]), rel=1e-6, nan_ok=True)
    text = (tables / name).read_text()
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert (tables / target).resolve().is_relative_to(tables.resolve()) and (tables / target).exists(), target
    for rid in re.findall(r"`([\w./-]*\d{8}-\d{6}_[0-9a-f]+[\w./-]*)`", text):
        assert (runs / rid).exists(), (name, rid)   # run ids: paths under the run root
    return values


@pytest.fixture(scope="module")
def sleep_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("reproduce_sleep")
    return {"args": _repo_args(base, "pvm,gopc1,sleep_pvm,sleep_gopc1"), "runs": base / "runs", "tables": base / "tables"}


def test_sleep_cells_share_the_runs_of_the_pvm_and_gopc1_cells(sleep_setup, capsys):
    assert main(sleep_setup["args"] + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    for seed in (0, 1):
        assert re.search(rf"sleep_pvm\s+{seed}\s+smoke\s+missing\s+shares the run of pvm seed {seed}", out)
        assert re.search(rf"sleep_gopc1\s+{seed}\s+smoke\s+missing\s+shares the run of gopc1 seed {seed}", out)
    assert "8 jobs: 8 missing" in out

    assert main(sleep_setup["args"]) == 0
    capsys.readouterr()
    runs = sleep_setup["runs"]
    for exp, cells in (("pvm", {"pvm", "sleep_pvm"}), ("gopc1", {"gopc1", "sleep_gopc1"})):
        trained = sorted((runs / exp).glob("*_*"))
        assert len(trained) == 2   # trained once per seed, probed by both cells
        slept = sorted((runs / f"{exp}-sleep").glob("*_*"))
        assert len(slept) == 2
        sources = {yaml.safe_load((s / "sleep.yaml").read_text())["source"] for s in slept}
        assert {str(Path(s).resolve()) for s in sources} == {str(t.resolve()) for t in trained}
        for run in trained:
            assert set(json.loads((run / "cell-done.json").read_text())["cells"]) == cells


def test_sleep_table_holds_the_numbers_of_the_linked_sleep_runs(sleep_setup):
    tables, runs = sleep_setup["tables"], sleep_setup["runs"]
    values = _check_values(tables, runs, "sleep.md")
    assert {Path(v["source"]).name for v in values} == {"sleep.csv"}
    assert {Path(v["source"]).parts[-4] for v in values} == {"pvm-sleep", "gopc1-sleep"}
    text = (tables / "sleep.md").read_text()
    metric = "held-out prediction error, mean squared"
    for row in ("PVM", "GOPC-1"):
        section = text.split(f"## {row}: ")[1].split("\n## ")[0]
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {metric} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        head = [c.strip() for c in next(ln for ln in section.splitlines() if ln.startswith("| metric |")).strip("|").split("|")]
        for col in ("before", "after sleep", "wake only (control)"):
            per_seed = [float(v["value"]) for v in values if v["row"] == f"{row} {metric}" and v["quantity"] == col]
            assert len(per_seed) == 2
            assert cells[head.index(col)] == f"{fmt(statistics.mean(per_seed))} ± {fmt(statistics.stdev(per_seed))}"
        assert cells[head.index("seeds")] == "2"
    index = (tables / "README.md").read_text()
    assert "[sleep.md](sleep.md)" in index and "sleep_gopc1: done; sleep_pvm: done" in index
    assert "not built yet" not in index


def test_sleep_cells_second_invocation_runs_nothing(sleep_setup, capsys):
    before = _snapshot(sleep_setup["runs"])
    assert main(sleep_setup["args"]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert _snapshot(sleep_setup["runs"]) == before
    assert main(sleep_setup["args"] + ["--dry-run"]) == 0
    assert "8 jobs: 8 done" in capsys.readouterr().out


def test_gopc2_study_cell_continues_a_partial_study_and_links_every_number(tmp_path, monkeypatch, capsys):
    from predvis.train import loop

    args = _repo_args(tmp_path, "gopc2_stability")
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    assert main(args + ["--dry-run"]) == 0
    assert re.search(r"gopc2_stability\s+-\s+smoke\s+missing\s+4 models", capsys.readouterr().out)

    train, calls = loop.train, []

    def stop_at_the_second_model(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train(*a, **k)

    monkeypatch.setattr(loop, "train", stop_at_the_second_model)
    assert main(args) == 130
    capsys.readouterr()
    monkeypatch.setattr(loop, "train", train)
    (study,) = (runs / "gopc2_study").iterdir()
    for claim in (study / "jobs").glob("*.claim"):   # a Ctrl-C ends the process, and its claim with it
        claim.unlink()
    assert main(args + ["--dry-run"]) == 0
    assert re.search(r"gopc2_stability\s+-\s+smoke\s+partial\s+1 of 4 models finished", capsys.readouterr().out)

    assert main(args) == 0
    capsys.readouterr()
    assert list((runs / "gopc2_study").iterdir()) == [study]   # continued with --study, not started afresh
    assert len(list((study / "jobs").glob("*.json"))) == 4 and (study / "cell-done.json").exists()
    values = _check_values(tables, runs, "gopc2_stability.md")
    assert {(v["row"], v["quantity"]) for v in values} >= {("default", "prior MSE"), ("gopc1", "recon MSE"),
                                                          ("gopc1-open", "prior MSE"), ("thesis", "prior MSE")}
    text = (tables / "gopc2_stability.md").read_text()
    own = (study / "tables" / "gopc2_stability.md").read_text()
    assert "\n".join("#" + ln if ln.startswith("#") else ln for ln in own.splitlines()) in text
    for rec in (study / "jobs").glob("*.json"):
        assert Path(json.loads(rec.read_text())["run"]).is_relative_to(runs.resolve())
    assert "gopc2_stability: done" in (tables / "README.md").read_text()
    for word in ("steps", "wall_time"):   # the study's learning curves, one line per setting
        assert f"](curves/gopc2_stability_{word}.png)" in text and (tables / "curves" / f"gopc2_stability_{word}.png").stat().st_size

    before = _snapshot(runs)
    assert main(args) == 0
    assert "0 to run" in capsys.readouterr().err
    assert _snapshot(runs) == before


def test_study_cells_with_two_workers_finish_and_link_every_number(tmp_path, capsys):
    """--workers 2 drives the studies N models at a time (their own --workers): both study folders are
    finished, and every number of their tables is the one in the linked records."""
    args = _repo_args(tmp_path, "gopc2_stability,depth_inversion") + ["--workers", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "2 models at a time" in err
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    for folder in ("gopc2_study", "depth_inversion_study"):
        (study,) = (runs / folder).iterdir()
        assert (study / "cell-done.json").exists() and not list((study / "jobs").glob("*.claim"))
    _check_values(tables, runs, "gopc2_stability.md")
    _check_values(tables, runs, "depth_inversion.md")
    assert main(args) == 0 and "0 to run" in capsys.readouterr().err


def test_top_index_lists_profile_folders_and_tables_of_studies_run_by_themselves(tmp_path):
    """tables/README.md is rewritten by every collector run: it must keep listing the tables that a study
    wrote there by itself (tables/depth_inversion.md, tables/gopc2_stability.md), not only the profiles."""
    from predvis.reproduce.command import _top_index

    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "README.md").write_text("# index\n")
    (tmp_path / "quick" / "gopc_prior.md").write_text("| a |\n")
    (tmp_path / "depth_inversion.md").write_text("| b |\n")
    _top_index(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "- [quick](quick/README.md): [gopc_prior.md](quick/gopc_prior.md)" in text
    assert "studies run by themselves" in text and "[depth_inversion.md](depth_inversion.md)" in text
    assert "[README.md](README.md)" not in text
    (tmp_path / "quick" / "index.html").write_text("<!DOCTYPE html>")
    _top_index(tmp_path)
    assert "- [quick](quick/README.md) ([all on one page](quick/index.html)): " in (tmp_path / "README.md").read_text()
