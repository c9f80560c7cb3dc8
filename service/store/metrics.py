"""The store's Prometheus metrics: what the writers wrote, dropped and hold, and the live comparison's gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DROP_REASONS = ("queue_full", "write_failed", "duplicate_id")
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StoreMetrics:
    """Counters of the writers and gauges of the last comparison a worker computed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter("store_written_total", "Predictions written to the store.", registry=registry)
        self.dropped = Counter(
            "store_dropped_total",
            "Predictions answered but not recorded, by reason (queue_full: the database fell behind; "
            "write_failed: it refused them, after retries; duplicate_id: a request id used twice).",
            ["reason"],
            registry=registry,
        )
        for reason in DROP_REASONS:  # at 0 from the start, so an alert on their rate has a series to read
            self.dropped.labels(reason)
        # Summed over workers: the predictions waiting for the database in the whole service.
        self.queue_depth = Gauge(
            "store_queue_depth", "Predictions waiting to be written.", registry=registry, multiprocess_mode="livesum"
        )
        self.write_seconds = Histogram(
            "store_write_seconds", "Time of one batched write.", buckets=WRITE_BUCKETS, registry=registry
        )
        self.outcomes = Counter("store_outcomes_total", "Outcomes recorded by POST /feedback.", registry=registry)

        def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
            # The comparison reads the shared store, so every worker computes the same; the most recent one wins.
            return Gauge(name, text, labels, registry=registry, multiprocess_mode="livemostrecent")

        self.labelled = gauge("comparison_labelled", "Predictions with an outcome.")
        self.accuracy = gauge("comparison_accuracy", "Accuracy on the labelled predictions.", ("model",))
        self.difference = gauge("comparison_accuracy_difference", "Accuracy of batchnorm minus plain.")
        self.sequence = gauge(
            "comparison_confidence_sequence",
            "Anytime-valid confidence sequence of the accuracy difference.",
            ("bound",),
        )
        self.mcnemar_p = gauge("comparison_mcnemar_p", "McNemar's exact p-value on the discordant pairs.")
        self.champion = gauge("answer_champion", "1 for the model(s) answering /predict now.", ("model",))
