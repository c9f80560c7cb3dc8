"""Per-request metric values kept in the process until the registry is read, for a worker that shares no values.

A prediction touches eleven Prometheus values (the request's count and latency, three stage times, two models'
counts), and prometheus_client takes a lock for each. With one worker (no multiprocess directory) nothing reads
them but this process's own scrape, so a request adds to plain Python numbers here instead, and
`Telemetry.exposition` hands every tally to its metric before it writes the text: a scrape is exact. With several
workers the values are written through at once, as before, so a scrape through any worker sums every worker's
requests.

The histogram tally adds to the child's bucket and sum values directly: prometheus_client has no public call that
adds n observations to one bucket. tests/service/test_tallies.py pins that a flushed tally and direct observations
give the same exposition, so a change of those internals fails a test, not a scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any


class HistogramTally:
    """Observations of one histogram child since the last flush: a count per bucket and their sum."""

    __slots__ = ("bounds", "child", "counts", "pending", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)  # ascending, the last +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.pending = False

    def observe(self, value: float) -> None:
        """One observation (prometheus_client's rule: the first bucket whose bound is >= the value)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.pending = True

    def flush(self) -> None:
        """Add what was observed to the child."""
        if not self.pending:
            return
        for i, count in enumerate(self.counts):
            if count:
                self.child._buckets[i].inc(count)
                self.counts[i] = 0
        self.child._sum.inc(self.total)
        self.total, self.pending = 0.0, False


class CounterTally:
    """Increments of one counter child since the last flush."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount`."""
        self.pending += amount

    def flush(self) -> None:
        """Add what was counted to the child."""
        if self.pending:
            self.child.inc(self.pending)
            self.pending = 0.0
