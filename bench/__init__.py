"""Benchmarks: each module `bench/<entry>.py` has `run()` printing `BENCH <entry>.<metric> <value>
[unit]` lines, every figure a ratio against a baseline measured in the same run (or a raw figure
printed beside its ratio)."""

from collections.abc import Callable


def printer(entry: str, digits: int = 3) -> Callable[..., None]:
    """The `BENCH <entry>.<metric> <value> [unit]` line writer for one entry."""

    def say(metric: str, value: float, unit: str = "") -> None:
        print(f"BENCH {entry}.{metric} {value:.{digits}f} {unit}".rstrip(), flush=True)

    return say
