"""Interleaved timing: every round times each system once, so a slow spell on a shared
machine hits all systems alike, and ratios are taken within a round.

    times = interleave({"a": run_a, "b": run_b}, rounds=5, warmup=2)   # name -> [s, ...]
    summary(times["a"])                  # Stat(median, min, max, n)
    ratio_per_round(times["a"], times["b"])  # Stat of a[r] / b[r] over the rounds
"""

import dataclasses
import gc
import statistics
import time


@dataclasses.dataclass(frozen=True)
class Stat:
    """Median, minimum and maximum of `n` samples."""

    median: float
    min: float
    max: float
    n: int


def summary(samples):
    """Stat of a non-empty list of numbers."""
    if not samples:
        raise ValueError("no samples")
    return Stat(statistics.median(samples), min(samples), max(samples), len(samples))


def time_call(fn):
    """Seconds one synchronous call of `fn()` takes (fn must block until its work is done)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(systems, rounds, warmup, repeat=1, progress=None):
    """Times each system's callable in turn, `rounds` times, after `warmup` untimed calls each.

    Args:
        systems: dict name -> callable running one unit of work synchronously.
        rounds: timed rounds (>= 1); in each, every system runs once (in insertion order).
        warmup: untimed calls per system before the first round (tracing, allocation).
        repeat: calls per timed sample; the sample is their mean (for sub-millisecond work).
        progress: optional callable(str) for a line per round.

    Returns:
        dict name -> list of `rounds` seconds (per call).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for fn in systems.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in systems}
    for r in range(rounds):
        for name, fn in systems.items():
            gc.collect()
            times[name].append(time_call(lambda fn=fn: [fn() for _ in range(repeat)]) / repeat)
        if progress:
            progress(
                f"round {r + 1}/{rounds}: "
                + ", ".join(f"{n} {t[-1] * 1e3:.1f} ms" for n, t in times.items())
            )
    return times


def ratio_per_round(ours, other):
    """Stat of ours[r] / other[r] over rounds r (the median of the per-round ratios)."""
    return summary([a / b for a, b in zip(ours, other)])
