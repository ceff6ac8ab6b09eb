"""Start-up: a command imports only what it uses (plotting, image and video libraries stay unloaded)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "skimage", "imageio", "scipy", "PIL", "sklearn", "pandas")

PROBE = """
import json, sys
from predvis.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split('.')[0] in %r)}))
""" % (HEAVY,)


def loaded_by(*args, tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_train_dry_run_loads_no_plotting_or_image_library(tmp_path):
    got = loaded_by("train", "gopc1", "--profile", "smoke", "--dry-run", "--out", str(tmp_path), tmp_path=tmp_path)
    assert got == {"code": 0, "loaded": []}
    assert not any(tmp_path.iterdir())


def test_help_loads_no_plotting_or_image_library(tmp_path):
    got = loaded_by("--help", tmp_path=tmp_path)
    assert got == {"code": 0, "loaded": []}
