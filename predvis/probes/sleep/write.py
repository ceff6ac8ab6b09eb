"""The new run a sleep makes: assembled in a staging folder, renamed into ``<out>/<name>-sleep/``."""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict
from pathlib import Path


from predvis.probes import attractors as A
from predvis.probes.sleep.cycles import CycleRow
from predvis.probes.sleep.measure import Evaluation
from predvis.probes.sleep.settings import SleepSettings
from predvis.probes.sleep.tables import summary_rows



def _figure_dreams(kinds: list[str], n: int) -> list[int]:
    first = [kinds.index(k) for k in ("noise", "grey", "real") if k in kinds]
    rest = [i for i in range(len(kinds)) if i not in first]
    return (first + rest)[:n]


def _figures(folder: Path, evals: dict[str, Evaluation], starts: A.Starts, s: SleepSettings, settings: dict,
             name: str) -> None:
    """frames/dream_<k>_<kind>.png and gifs/dream_<k>_<kind>.gif: the same dream per model state."""
    from predvis.figures.sleep import write_dream_pair

    N = next(iter(evals.values())).dreams.shape[1]
    rows = {"before": "before sleep", "after": "after sleep", "control": "wake only (control)"}
    for k, i in enumerate(_figure_dreams(starts.kinds, s.figures)):
        tag = f"dream_{k}_{starts.kinds[i]}"
        title = [f"sleep of {name}: dream {k} from a {starts.kinds[i]} start",
                 f"{s.prime} copies of the start, then {N} dream steps; {settings['cycles']} sleep cycles at rate "
                 f"{settings['rate']:g}, wake {'on' if settings['wake'] else 'off'}; settled = change < "
                 f"{s.threshold:g} for {s.patience} steps"]
        write_dream_pair(folder / "frames" / f"{tag}.png", folder / "gifs" / f"{tag}.gif", starts.frames[i],
                         {rows[p]: ev.dreams[i] for p, ev in evals.items()},
                         {rows[p]: ev.settled[i] for p, ev in evals.items()}, title)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_sleep_run(run_path: Path, out: Path | None, cfg, method, payload: dict, settings: dict, summary: dict,
                    text: str, rows: list[CycleRow], before: Evaluation, after: Evaluation, starts: A.Starts,
                    steps: int, s: SleepSettings, control: Evaluation | None = None) -> Path:
    """Assemble the new run (checkpoint ``payload``: the slept model) in a staging folder, then rename it
    into ``<out>/<name>-sleep/<stamp>_<id>/`` (:class:`predvis.run.StagedDir`); returns that folder."""
    import yaml

    from predvis.config import dump_yaml
    from predvis.run import (StagedDir, atomic_torch_save, atomic_write_json, atomic_write_text, command_line,
                             environment, write_csv)
    root = Path(out) if out is not None else run_path.parent.parent
    with StagedDir(root / f"{cfg.name}-sleep", "sleep run") as staged:
        staging = staged.path
        for sub in ("metrics", "checkpoints", "frames", "gifs", "tables"):
            (staging / sub).mkdir()
        settings = dict(settings, source_sha256=_sha256(settings["source_checkpoint"]))
        header = (f"# predvis sleep of {run_path} (settings in sleep.yaml); the model config is the source's\n")
        atomic_write_text(staging / "config.yaml", header + dump_yaml(cfg.to_dict()))
        src_over = run_path / "overrides.yaml"
        atomic_write_text(staging / "overrides.yaml", src_over.read_text() if src_over.exists() else "{}\n")
        atomic_write_text(staging / "sleep.yaml", yaml.safe_dump(settings, sort_keys=False, default_flow_style=False))
        atomic_write_text(staging / "cmd.txt", command_line())
        atomic_write_json(staging / "env.json", environment(method.device, s.seed, extra={"sleep_of": str(run_path)}))
        if (run_path / "metrics" / "train.csv").exists():
            shutil.copyfile(run_path / "metrics" / "train.csv", staging / "metrics" / "train.csv")
        atomic_torch_save(staging / "checkpoints" / "last.pt", payload)
        atomic_torch_save(staging / "checkpoints" / "best.pt", payload)
        atomic_write_text(staging / "tables" / "sleep.md", text + "\n")
        head, table = summary_rows(summary, steps)
        write_csv(staging / "tables" / "sleep.csv", [dict(zip(head, r)) for r in table])
        write_csv(staging / "metrics" / "sleep_cycles.csv", [asdict(r) for r in rows])
        per = []
        evs = {"before": before, "after": after, **({"control": control} if control is not None else {})}
        for phase, ev in evs.items():
            lab = dict(zip(ev.owners, ev.labels))
            for i, st in enumerate(ev.settled):
                per.append({"phase": phase, "dream": i, "start": starts.kinds[i],
                            "settled": "" if st is None else st.kind, "step": "" if st is None else st.step,
                            "period": "" if st is None else st.period,
                            "length": steps if st is None else st.step, "attractor": lab.get(i, "")})
        write_csv(staging / "metrics" / "sleep_dreams.csv", per)
        write_csv(staging / "metrics" / "sleep_diversity.csv",
                  [{"step": t + 1, **{k: float(ev.div[t]) for k, ev in evs.items()}}
                   for t in range(before.div.shape[0])])
        _figures(staging, evs, starts, s, settings, cfg.name)
        atomic_write_json(staging / "summary.json", {"settings": settings, "summary": summary})
        atomic_write_json(staging / "status.json", {"state": "done", "epoch": int(payload["epoch"]) + 1,
                                                    "epochs": cfg.train.epochs, "sleep": True})
    return staged.final
