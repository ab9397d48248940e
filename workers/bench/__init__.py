"""The benchmark harness behind `durapay bench` (see `workers.bench.main` and BENCHMARKS.md)."""
