"""The roofline section of `make bench`: work counted on the real code, goals set against measured peaks."""
import torch
import torch.nn as nn

from predvis.bench import roofline


def test_flop_count_includes_the_in_place_products_the_pvm_step_uses():
    acc, a, b = torch.zeros(3, 4, 6), torch.rand(3, 4, 5), torch.rand(3, 5, 6)
    want = 2 * 3 * 4 * 5 * 6
    assert roofline.count_flops(lambda: acc.baddbmm_(a, b)) == want
    assert roofline.count_flops(lambda: torch.baddbmm(acc, a, b)) == want
    assert roofline.count_flops(lambda: acc[0].addmm_(a[0], b[0])) == want // 3
    assert roofline.count_flops(lambda: acc.add_(1.0)) == 0  # element-wise work is not counted


def test_flop_count_of_a_convolution_forward_and_backward():
    conv = nn.Conv2d(3, 4, 3)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    forward = 2 * (2 * 4 * 6 * 6) * 3 * 9  # 2 x output values x inputs per output
    assert roofline.count_flops(lambda: conv(x)) == forward
    # backward: the gradient of the input and of the weight, each as much as the forward
    assert roofline.count_flops(lambda: conv(x).sum().backward()) == 3 * forward


def test_pvm_work_is_at_least_one_read_of_every_weight():
    layers = (4, 2, 1)
    from predvis.backends.pvm.model import PVM

    weights = sum(PVM(list(layers), seed=0).n_weights)
    assert roofline.pvm_one_stream_bytes(layers) >= 4 * weights
    # every weight multiplies 3 streams at least twice (forward and gradient): 2 x 2 FLOP
    assert roofline.pvm_step_flops(3, layers) >= 2 * 2 * 3 * weights


def test_goal_rows_set_the_required_rate_against_the_peaks():
    peaks = {2: {"fp32": 50.0, "bf16": 200.0, "read": 20.0}}
    goals = [{"goal": "a", "work": 1e9, "unit": "FLOP", "goal_steps_per_s": 100, "now_steps_per_s": 25,
              "now_label": "now"},
             {"goal": "b", "work": 1e8, "unit": "B", "goal_steps_per_s": 100, "now_steps_per_s": 50,
              "now_label": "now"}]
    rows = roofline.roofline_rows(peaks, 2, goals)
    assert rows[0][2] == "100 GFLOP/s" and rows[0][3] == "200% of fp32, 50% of bf16"
    assert rows[0][4] == "now: 25 GFLOP/s (50% of fp32, 12% of bf16)"
    assert rows[1][2] == "10.0 GB/s" and rows[1][3] == "50% of read" and rows[1][4] == "now: 5.0 GB/s (25% of read)"


def test_section_from_the_results_of_the_benchmarks_it_follows():
    """The section as `make bench` builds it, from small real runs of the three benchmarks."""
    from predvis.bench.pvm import bench_pvm, bench_pvm_paths
    from predvis.bench.recurrent_ae import BASELINE, CANDIDATES, bench_recurrent_ae

    blt = bench_recurrent_ae(batch=2, repeats=1, threads=1, candidates={BASELINE: CANDIDATES[BASELINE]})
    one = bench_pvm(steps=2, ref_steps=0, threads=1, layers=(4, 2, 1), block=1)
    many = [bench_pvm_paths(streams=2, steps=1, block=1, threads=1, layers=(4, 2, 1),
                            paths=["now: plain W1 and momentum (W += M)"])]
    text = roofline.section(blt, one, many, threads=1)
    assert "| 1 | " in text and "BLT-BLT training step, batch 2" in text
    assert "PVM layers (4, 2, 1), 2 streams" in text and "PVM layers (4, 2, 1), one stream, 120 steps/s" in text
    assert text.count("% of fp32") == 4 and text.count("% of read") == 2
