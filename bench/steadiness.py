"""How steady this machine's CPU speed is: the same pure-Python loop on every CPU at once, counted in short slices.

Usage:
    .venv/bin/python bench/steadiness.py [--seconds 10] [--slice 0.5]

On a shared host (a VM whose CPUs share physical cores with other tenants) the work a CPU does in half a second
drifts by tens of per cent, and differently on each CPU; that bounds how finely two servers timed one after the
other, or on two CPUs, can be compared. bench/bench_monitoring.py prints it before its figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier


def spin(cpu: int, ready: Barrier, slices: int, slice_s: float, out: Queue[tuple[int, list[int]]]) -> None:
    """On `cpu`, once every spinner is ready: loop iterations done in each of `slices` slices, put on `out`."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    ready.wait()  # a spawned process takes a while to import; the slices start together once all have
    start, counts = time.monotonic(), []
    for i in range(slices):
        end, n = start + (i + 1) * slice_s, 0
        while time.monotonic() < end:
            for _ in range(1000):
                n += 1
        counts.append(n)
    out.put((cpu, counts))


@dataclass(frozen=True)
class Steadiness:
    """Per CPU, the spread of its speed over slices; across CPUs, how much their speeds move together."""

    slice_s: float
    sd: dict[int, float]  # coefficient of variation of a CPU's slice counts
    worst: dict[int, float]  # the largest |slice / mean - 1| of a CPU
    correlation: float | None  # Pearson's r of two CPUs' slice counts (None with one CPU)

    def describe(self) -> str:
        """One line for a report."""
        cpus = ", ".join(f"CPU {c} sd {self.sd[c] * 100:.0f} % (worst {self.worst[c] * 100:.0f} %)" for c in self.sd)
        corr = "" if self.correlation is None else f"; the first two CPUs' speeds correlate r = {self.correlation:.2f}"
        return f"machine steadiness, {self.slice_s:g}-second slices of a pure-Python loop: {cpus}{corr}"


def measure(seconds: float = 10.0, slice_s: float = 0.5) -> Steadiness:
    """Spin on every CPU this process may use, all at once, and summarise the slices."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    slices = max(2, round(seconds / slice_s))
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(len(cpus)), context.Queue()
    spinners = [context.Process(target=spin, args=(cpu, ready, slices, slice_s, out)) for cpu in cpus]
    for process in spinners:
        process.start()
    by_cpu = dict(out.get() for _ in spinners)
    for process in spinners:
        process.join()
    runs = [by_cpu[cpu] for cpu in cpus]
    sd, worst = {}, {}
    for cpu, counts in zip(cpus, runs, strict=True):
        mean = statistics.mean(counts)
        sd[cpu] = statistics.stdev(counts) / mean
        worst[cpu] = max(abs(c / mean - 1) for c in counts)
    correlation = statistics.correlation(runs[0], runs[1]) if len(runs) >= 2 else None
    return Steadiness(slice_s, sd, worst, correlation)


def main() -> None:
    """Print the machine's steadiness."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds to spin")
    parser.add_argument("--slice", type=float, default=0.5, help="seconds per slice")
    args = parser.parse_args()
    print(measure(args.seconds, args.slice).describe())


if __name__ == "__main__":
    main()
