"""Benchmarks behind ``predvis bench`` (:mod:`predvis.bench.command`), one module per benchmark."""
