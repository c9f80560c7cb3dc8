"""In-process tallies (one worker) give the exposition that observing each value at once gives: the same counts, and
sums equal but for the order in which the same floats were added."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.tallies import CounterTally, HistogramTally
from service.telemetry import LATENCY_BUCKETS, STAGE_BUCKETS

VALUES = st.lists(st.floats(min_value=0.0, max_value=5.0) | st.sampled_from([*LATENCY_BUCKETS, *STAGE_BUCKETS]))


def metrics(registry: CollectorRegistry) -> tuple[Histogram, Histogram, Counter]:
    """The same metrics in a registry of their own."""
    latency = Histogram("latency_seconds", "t", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    stage = Histogram("stage_seconds", "t", buckets=STAGE_BUCKETS, registry=registry)
    count = Counter("rows_total", "c", ["model"], registry=registry)
    return latency, stage, count


@settings(max_examples=60, deadline=None)
@given(values=VALUES, rows=st.lists(st.integers(min_value=0, max_value=10_000)), flushes=st.integers(1, 4))
def test_flushed_tallies_equal_direct_observations(values: list[float], rows: list[int], flushes: int) -> None:
    direct, kept = CollectorRegistry(), CollectorRegistry()
    latency, stage, count = metrics(direct)
    latency_kept, stage_kept, count_kept = metrics(kept)
    latency.labels("/predict")  # children exist in both, as Telemetry makes one at its first use either way
    count.labels("plain")
    tallies: tuple[HistogramTally, HistogramTally, CounterTally] = (
        HistogramTally(latency_kept.labels("/predict")),
        HistogramTally(stage_kept),
        CounterTally(count_kept.labels("plain")),
    )
    for i, value in enumerate(values):
        latency.labels("/predict").observe(value)
        stage.observe(value)
        tallies[0].observe(value)
        tallies[1].observe(value)
        if i % flushes == 0:
            for tally in tallies:
                tally.flush()
    for n in rows:
        count.labels("plain").inc(n)
        tallies[2].inc(n)
    for tally in tallies:
        tally.flush()
    got, expected = samples(kept), samples(direct)
    # Counts exactly; a sum of the same floats added in another grouping may differ in its last bit.
    assert [(name, labels) for name, labels, _ in got] == [(name, labels) for name, labels, _ in expected]
    for (name, _, value), (_, _, want) in zip(got, expected, strict=True):
        assert value == (pytest.approx(want, rel=1e-12, abs=1e-15) if name.endswith("_sum") else want), name


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the exposition but the creation times (two registries make their children at other times)."""
    text = generate_latest(registry).decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]
