"""Benchmarks: each module `bench/<entry>.py` has `run()` printing `BENCH <entry>.<metric> <value>
[unit]` lines, every figure a ratio against a baseline measured in the same run (or a raw figure
printed beside its ratio)."""
