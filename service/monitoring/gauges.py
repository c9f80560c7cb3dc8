"""Prometheus gauges of the input monitor, set from each report (GET /monitoring and every scrape)."""

from __future__ import annotations

import math
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Gauge

from service.monitoring.schemas import MonitoringReport

# Each worker monitors its own window; with several workers a scrape shows the report computed last by a
# live worker (each worker's window is a sample of the same traffic: the kernel spreads connections).
MODE: Final[Literal["livemostrecent"]] = "livemostrecent"


def _value(flag: bool | None) -> float:
    return math.nan if flag is None else float(flag)


class MonitoringGauges:
    """Window size, the verdict, per-feature p-values and drift, per-layer largest |z| and drift."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, text, labels, registry=registry, multiprocess_mode=MODE)

        self.window = gauge("monitoring_window_passengers", "Passengers in the monitoring window.")
        self.drift = gauge(
            "monitoring_drift", "1 when any feature or layer drifted, 0 when none, NaN: not enough data."
        )
        self.p_value = gauge("monitoring_feature_p_value", "p-value of the feature's drift test.", ("feature",))
        self.feature_drift = gauge("monitoring_feature_drift", "1 when the feature drifted (Bonferroni).", ("feature",))
        self.largest_z = gauge(
            "monitoring_layer_max_abs_z", "Largest |z| of a unit's mean pre-activation.", ("model", "layer")
        )
        self.out_of_bounds = gauge(
            "monitoring_layer_units_out_of_bounds", "Units whose |z| is over the threshold.", ("model", "layer")
        )
        self.layer_drift = gauge("monitoring_layer_drift", "1 when any unit of the layer drifted.", ("model", "layer"))

    def update(self, report: MonitoringReport) -> None:
        """Set every gauge from a report (NaN where the report says not enough data)."""
        self.window.set(report.window.size if report.window is not None else 0)
        self.drift.set(_value(report.drift))
        for feature in report.features:
            self.p_value.labels(feature.feature).set(math.nan if feature.p_value is None else feature.p_value)
            self.feature_drift.labels(feature.feature).set(_value(feature.drift))
        for layer in report.activations:
            key = (layer.model, layer.layer)
            self.largest_z.labels(*key).set(math.nan if layer.largest_z is None else abs(layer.largest_z))
            out = layer.units_out_of_bounds
            self.out_of_bounds.labels(*key).set(math.nan if out is None else out)
            self.layer_drift.labels(*key).set(_value(layer.drift))
