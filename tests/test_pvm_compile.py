"""PVM's compiled element-wise tail (train.compile with several streams) against the eager step."""
from __future__ import annotations

import shutil

import pytest
import torch

from predvis.backends.pvm import tail
from predvis.backends.pvm.model import PVM, PVMSchedule
from predvis.backends.pvm.tail import CompiledTail
from pvm_side_by_side import step_pair

pytestmark = [pytest.mark.slow,  # inductor compiles each function once per layer shape (seconds each)
              pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                 reason="torch.compile on the CPU needs a C++ compiler (g++ / c++ not found)")]

# rounding only: inductor may contract multiply-adds and sums the mean in its own order; after
# 6 learning steps the states, predictions and weights agree to a few float32 ulps (bf16: the
# compiled W1 update rounds the same float32 values to bfloat16 as the eager one)
TOLERANCE = 1e-5


@pytest.mark.parametrize("kw", [{}, {"center": True, "residual": True}, {"precision": "bf16"}],
                         ids=["paper form", "centred residual", "bf16"])
def test_compiled_tail_matches_the_eager_step(kw):
    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)  # every layer and pathway learning
    eager = PVM([4, 2, 1], schedule=on, seed=0, **kw)
    comp = PVM([4, 2, 1], schedule=on, seed=0, compiled_tail=True, **kw)
    comp._tail = CompiledTail(min_rows=0)  # every layer compiled (at this size none would pay)
    frames = torch.rand(6, 3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    se, sc = step_pair(eager, comp, frames, 3, TOLERANCE, TOLERANCE)
    torch.testing.assert_close(sc.h_all, se.h_all, rtol=0, atol=TOLERANCE)
    for l in range(eager.n_layers):
        for a, b in zip(comp.layer_weights(l), eager.layer_weights(l)):
            torch.testing.assert_close(a, b, rtol=0, atol=TOLERANCE)
    assert 0 < comp.compile_seconds and eager.compile_seconds == 0.0
    assert comp._tail is not None and eager._tail is None  # the compiled path really ran
    ran = {key[0] for key in comp._tail._seen}
    assert ran == {"errors", "hidden", "output"} | ({"lowp_update"} if kw.get("precision") == "bf16" else set())


def test_only_layers_with_enough_rows_compile():
    """The default threshold: at 64 streams the paper model's layers 0 and 1 (256 and 64 units) pay,
    its upper layers (16 units and fewer) run eager; 3 streams of a small model run all eager."""
    t = CompiledTail()
    assert t.pays(256, 64) and t.pays(64, 64) and not t.pays(16, 64) and not t.pays(16, 3)
    m = PVM([4, 2, 1], seed=0, compiled_tail=True)
    s = m.init_state(3)
    for f in torch.rand(3, 3, 3, 20, 20, generator=torch.Generator().manual_seed(0)):
        s = m.step(f, s).state
    assert m.compile_seconds == 0.0


def test_one_stream_and_gradients_stay_eager():
    """One stream (the ring form) and a differentiable step never build the compiled functions."""
    m = PVM([4, 2, 1], seed=0, compiled_tail=True)
    s = m.init_state(1)
    for f in torch.rand(3, 1, 3, 20, 20, generator=torch.Generator().manual_seed(0)):
        s = m.step(f, s).state
    m.set_learning(False)
    m.differentiable_step(torch.rand(2, 3, 20, 20, requires_grad=True), m.init_state(2)).prediction.sum().backward()
    assert m._tail is None and m.compile_seconds == 0.0


def test_bench_shows_the_compiled_paths_side_by_side(monkeypatch):
    from predvis.bench.pvm import DEFAULT_PATH, OPT_IN, PATHS, bench_pvm_paths

    monkeypatch.setattr(tail, "MIN_ROWS", 0)  # every layer compiled at this small size
    r = bench_pvm_paths(streams=2, steps=2, block=1, threads=1, layers=(4, 2, 1))
    assert list(r["frames_per_s"]) == list(PATHS)
    compiled = [k for k in PATHS if PATHS[k].get("compiled_tail")]
    assert compiled and set(r["compile_seconds"]) == set(compiled) and all(v > 0 for v in r["compile_seconds"].values())
    fp32 = compiled[0]
    assert PATHS[fp32].get("precision", "fp32") == "fp32" and fp32 in OPT_IN
    assert r["diffs"][fp32][1] < 1e-5 and r["diffs"][DEFAULT_PATH] == (0.0, 0.0)
