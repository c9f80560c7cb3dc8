"""Benchmark of the comparison statistics (service/comparison/): one report, its parts, and McNemar's tail.

Run: .venv/bin/python bench/bench_comparison_stats.py [--labelled 100000] [--unlabelled 10000] [--window 1000]
                                                      [--repeats 50]

Times comparison_report on seeded simulated pairs (the two models right on about 80 % of the passengers and
disagreeing on about 10 %), the median and the fastest of --repeats calls after one warm-up, then its largest
parts and the exact McNemar p-value at a million discordant pairs. The target (well under 100 ms for 100,000
labelled and 10,000 unlabelled pairs) is printed next to the figure; this script judges nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from service.comparison.metrics import reliability
from service.comparison.paired import confidence_sequence, mcnemar_p
from service.comparison.report import LabelledPairs, UnlabelledPairs, comparison_report
from service.comparison.schemas import ComparisonReport

TARGET_MS = 100.0


def simulated(labelled: int, unlabelled: int, seed: int = 0) -> tuple[LabelledPairs, UnlabelledPairs]:
    """Calibrated-looking probabilities of two similar models and outcomes drawn from the first one's."""
    rng = np.random.default_rng(seed)
    n = labelled + unlabelled
    logit = rng.normal(0, 2, size=n)
    p_batchnorm = 1 / (1 + np.exp(-logit))
    p_plain = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, size=n))))
    survived = (rng.uniform(size=labelled) < p_batchnorm[:labelled]).astype(np.int64)
    return (
        LabelledPairs(p_batchnorm[:labelled], p_plain[:labelled], survived),
        UnlabelledPairs(p_batchnorm[labelled:], p_plain[labelled:]),
    )


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and fastest wall time of `repeats` calls (ms), after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=int, default=100_000)
    parser.add_argument("--unlabelled", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    labelled, unlabelled = simulated(args.labelled, args.unlabelled)
    total = args.labelled + args.unlabelled

    def report() -> ComparisonReport:
        return comparison_report(labelled, unlabelled, total, args.window)

    median, fastest = timed(report, args.repeats)
    print(
        f"| comparison_report, {args.labelled:,} labelled + {args.unlabelled:,} unlabelled pairs "
        f"({args.repeats} calls) | median {median:.1f} ms, fastest {fastest:.1f} ms | target < {TARGET_MS:.0f} ms |"
    )
    y = labelled.survived.astype(bool)
    differences = (labelled.p_batchnorm >= 0.5).astype(float) - (labelled.p_plain >= 0.5).astype(float)
    parts: dict[str, Callable[[], object]] = {
        "reliability (one model, all labelled)": lambda: reliability(labelled.p_batchnorm, y),
        "confidence sequence (all labelled)": lambda: confidence_sequence(differences, 0.05),
        "McNemar exact p, b + c = 1,000,000": lambda: mcnemar_p(499_000, 501_000),
    }
    for name, call in parts.items():
        median, fastest = timed(call, args.repeats)
        print(f"| {name} | median {median:.2f} ms, fastest {fastest:.2f} ms |")
    print(report().verdict)


if __name__ == "__main__":
    main()
