"""Generated KEY=VALUE overrides against ``predvis train gopc1 --profile smoke --dry-run``: every outcome is
exit 0, or exit 2 with exactly one ``error:`` line; never a traceback, and nothing is written."""
import dataclasses
import sys

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from predvis.cli import main
from predvis.backends.registry import get_method

METHOD = get_method("gopc")
SECTIONS = {"model": METHOD.ModelConfig, "data": METHOD.DataConfig, "train": METHOD.TrainConfig,
            "eval": METHOD.EvalConfig}
KEYS = sorted(f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls))
KEYS += ["seed", "device", "name", "method", "profile"]
# misspelt, unknown and malformed keys
ODD_KEYS = ["train.epocs", "model", "train", "nosuch", "data.mnist.x", "train..lr", ".lr", "train.lr.", " "]

SPECIAL = ["inf", "-inf", ".inf", "-.inf", "nan", ".nan", "NaN", "1e400", "-1e400", "1.0e+300", "", "~", "null",
           "true", "no", "[1, 2]", "[]", "{}", "{a: 1}", "[8, 4]", "'5'", "0x10", "1_000", "-0", "0.5", "1e-3",
           "[", "{", ": :", "- a", "mlxtend", "cpu", "cuda", "mps", "gopc1", "vae1", "smooth", "bf16", "fp16",
           "/no/such/file", "*", "!!python/object:os.system", "&a a", "a=b"]
# Sizes stay small so an accepted override builds in well under a second; "\x00" cannot occur in a real argv.
def _literal_choices():
    import typing

    out = set()
    for cls in SECTIONS.values():
        for tp in typing.get_type_hints(cls).values():
            if typing.get_origin(tp) is typing.Literal:
                out.update(str(a) for a in typing.get_args(tp))
    return sorted(out)


VALUES = st.one_of(
    st.integers(0, 40).map(str),
    st.integers(-3, 40).map(str),
    st.sampled_from(_literal_choices()),  # the schema's own choices (model.kind, data.dataset, ...)
    st.floats(min_value=-1e3, max_value=1e3).map(repr),
    st.sampled_from(SPECIAL),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8),
)
OVERRIDE = st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(KEYS), st.sampled_from(ODD_KEYS)), VALUES)
OVERRIDES = st.lists(st.one_of(OVERRIDE, st.sampled_from(["novalue", "=5", "train.lr"])), min_size=1, max_size=2)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@pytest.mark.bad_input("generated")
@given(overrides=OVERRIDES)
def test_generated_overrides_exit_0_or_one_error_line(tmp_path_factory, overrides):
    out = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    try:
        # predvis's own entry point (it turns errors into the one line) inside CliRunner's captured streams
        with CliRunner().isolation() as (stdout, stderr, _):
            code = main(["train", "gopc1", "--profile", "smoke", "--dry-run", "--out", str(out), *overrides])
            sys.stdout.flush(), sys.stderr.flush()  # the isolation's text wrappers buffer
            printed, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    finally:
        torch.set_num_threads(threads)  # train.threads=N changes it for the whole process
    assert code in (0, 2), (overrides, code, err)
    assert "Traceback" not in err + printed, (overrides, err)
    if code == 0:
        event("accepted (exit 0)")
    else:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        if lines[0].startswith("error: "):
            assert len(lines) == 1, (overrides, err)
            event("refused: one error line")
        else:  # a usage error that Typer reports itself (its boxed message), also exit 2
            assert "Usage:" in err, (overrides, err)
            event("refused: Typer usage error")
    assert not any(out.iterdir()), (overrides, list(out.rglob("*")))
