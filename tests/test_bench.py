"""The benchmarks that run in child processes: each starts, trains and reports (they are never timed here)."""


def test_allocator_bench_times_each_candidate_in_child_processes():
    from predvis.bench.allocator import Candidate, bench_allocator

    pair = (Candidate("default", "classifier", "smoke", (), False), Candidate("tuned", "classifier", "smoke", (), True))
    r = bench_allocator(threads=1, rounds=1, steps=2, candidates=pair)
    assert set(r) == {"default", "tuned"}
    for v in r.values():
        assert v["wall_ms"] > 0 and v["cpu_ms"] > 0 and v["faults_per_step"] >= 0
        assert v["same_losses"] is True        # the allocator changes no number


def test_data_parallel_bench_runs_one_and_two_processes():
    """`make bench`'s torchrun section: each worker imports and trains (a broken import shows here, not in CI's bench)."""
    from predvis.bench.train_options import bench_ddp

    # the smoke classifier on one thread per process, as tests/test_distributed.py trains under torchrun
    text, med = bench_ddp(steps=1, rounds=1, experiment=("classifier", "smoke", ("train.batch_size=16",)), threads=1)
    assert set(med) == {1, 2} and all(v > 0 for v in med.values()), text
    assert "| 2 | 1 |" in text  # the table row of 2 processes with 1 thread each


def test_data_parallel_bench_names_a_failing_worker():
    """A worker that cannot start (an unknown experiment) gives one line naming the cause, not an empty table."""
    from predvis.bench.train_options import bench_ddp

    text, med = bench_ddp(steps=1, rounds=1, experiment=("no_such_experiment", "smoke", ()), threads=1)
    assert med == {} and text.startswith("data-parallel benchmark failed (1 process,")
    assert "no_such_experiment" in text.splitlines()[0]
