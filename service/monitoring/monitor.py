"""One worker's input monitor: its window, the served run's reference, the report and its gauges.

The window holds raw inputs, not activations: a request costs one copy of its rows, and the hidden layers'
pre-activations are recomputed from those rows with the served (folded) layers when a report is asked for
(GET /monitoring, a Prometheus scrape), about a millisecond for 1,000 rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from pydantic import ValidationError

from service.monitoring.gauges import MonitoringGauges
from service.monitoring.schemas import FeatureDrift, LayerDrift, MonitoringReport, WindowInfo
from service.monitoring.stats import chi2_test, ks_test, layer_test, missing_rate_test
from service.monitoring.summaries import hidden_preactivations, quantiles
from service.monitoring.window import PassengerWindow
from service.pair import ServedPair
from survival.features import FloatArray, Preprocessing, preprocess
from survival.reference import (
    AGE_INDEX,
    FARE_INDEX,
    PCLASS_INDEX,
    REFERENCE_FILE,
    FeatureReference,
    LayerReference,
    Reference,
    parse_reference,
)
from survival.served import Layers

logger = logging.getLogger("service")
FEATURE_TESTS = 4  # Pclass, Fare, Age, missing-age rate: the Bonferroni count of the input family


class UnusableReferenceError(ValueError):
    """The served run has no usable reference; the message names the file and the problem."""


@dataclass(frozen=True)
class LayerProbe:
    """A hidden layer's expectation in the space the served network computes (the folded pre-activation)."""

    name: str
    expected: FloatArray  # scale * mean + shift
    sd: FloatArray  # |scale| * sqrt(var)

    @classmethod
    def of(cls, ref: LayerReference) -> LayerProbe:
        """Map the reference's BatchNorm-input statistics through BatchNorm's eval-mode affine map."""
        scale, shift = np.asarray(ref.scale), np.asarray(ref.shift)
        mean, var = np.asarray(ref.mean), np.asarray(ref.var)
        return cls(name=ref.name, expected=scale * mean + shift, sd=np.abs(scale) * np.sqrt(var))


@dataclass(frozen=True)
class ModelProbe:
    """What the monitor needs of one served model: its layers, preprocessing and layer references."""

    name: str
    layers: Layers
    preprocessing: Preprocessing
    probes: list[LayerProbe]


@dataclass(frozen=True)
class MonitoredRun:
    """The served run as the monitor compares with it."""

    run_id: str
    features: FeatureReference
    models: list[ModelProbe]
    fare_quantiles: list[float]
    age_quantiles: list[float]

    @property
    def families(self) -> int:
        """Test families sharing alpha: the inputs, and every hidden layer of every model."""
        return 1 + sum(len(m.probes) for m in self.models)


def monitored_run(pair: ServedPair) -> MonitoredRun:
    """The run's references, checked against its served layers (UnusableReferenceError naming the file otherwise)."""
    models = []
    features: FeatureReference | None = None
    for name, served in pair.models.items():
        where = f"{pair.run_dir or pair.model_dir}/{name}/{REFERENCE_FILE}"
        data = served.artifacts.get(REFERENCE_FILE)
        if data is None:
            raise UnusableReferenceError(
                f"{where}: missing (run trained before input monitoring; retrain: python -m training)"
            )
        try:
            reference: Reference = parse_reference(data)
        except ValidationError as exc:
            raise UnusableReferenceError(
                f"{where}: {exc.errors()[0]['msg']} ({exc.error_count()} problem(s))"
            ) from None
        widths = [bias.shape[0] for _, bias in served.layers[:-1]]
        if [layer.units for layer in reference.layers] != widths:
            raise UnusableReferenceError(
                f"{where}: layer widths {[r.units for r in reference.layers]} are not the model's {widths}"
            )
        if features is not None and reference.features != features:
            raise UnusableReferenceError(
                f"{where}: feature reference differs from the other model's (one run, one split)"
            )
        features = reference.features
        probes = [LayerProbe.of(layer) for layer in reference.layers]
        models.append(ModelProbe(name, served.layers, served.metadata.preprocessing, probes))
    assert features is not None  # a pair always holds both variants
    return MonitoredRun(
        run_id=pair.run_id,
        features=features,
        models=models,
        fare_quantiles=quantiles(np.asarray(features.fare.values)) or [],
        age_quantiles=quantiles(np.asarray(features.age.values)) or [],
    )


def _time(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


class Monitor:
    """The window of this worker's last `capacity` passengers and the tests against the served run's reference."""

    def __init__(
        self,
        pair: ServedPair,
        *,
        capacity: int,
        min_size: int,
        alpha: float,
        gauges: MonitoringGauges | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = PassengerWindow(capacity, clock)
        self.min_size = min_size
        self.alpha = alpha
        self.gauges = gauges
        self._run: MonitoredRun | None = None
        self._error: str | None = None
        self.window_runs: tuple[str, ...] = ()
        self.swap(pair)

    def observe(self, raw: FloatArray) -> None:
        """Add the rows of a served (valid) request to the window."""
        self.window.add(raw)

    def swap(self, pair: ServedPair) -> bool:
        """Compare with `pair`'s run from now on; returns whether the window was kept.

        The window holds raw inputs, which mean the same under any model: it is kept when the new run's
        feature reference is the old one (same training rows; the layers are recomputed with the new weights
        at the next report), and emptied otherwise, so no verdict mixes two training populations.
        """
        old = self._run
        try:
            self._run, self._error = monitored_run(pair), None
        except UnusableReferenceError as exc:
            self._run, self._error = None, str(exc)
            logger.warning("input monitoring is off for run %s: %s", pair.run_id, exc)
        keep = old is not None and self._run is not None and old.features == self._run.features
        if not keep:
            self.window.clear()
        # The runs whose passengers the window may hold (what a window read from the store selects).
        self.window_runs = (*self.window_runs, pair.run_id) if keep else (pair.run_id,)
        return keep

    def report(self, shared: tuple[FloatArray, float | None] | None = None) -> MonitoringReport:
        """Run every test on the window now (and update the gauges): this worker's own window, or the `shared`
        one (the rows and the oldest's time) every worker and replica reads from the store."""
        rows, oldest = self.window.snapshot() if shared is None else shared
        run = self._run
        window = WindowInfo(
            size=rows.shape[0],
            capacity=self.window.capacity,
            min_size=self.min_size,
            since=_time(oldest),
            reset_at=datetime.fromtimestamp(self.window.reset_at, UTC),
            run_id=run.run_id if run is not None else None,
        )
        if run is None:
            report = MonitoringReport(
                enabled=True, alpha=self.alpha, window=window, drift=None, reference_error=self._error
            )
        else:
            features, activations = self._tests(run, rows)
            verdicts = [t.drift for t in features] + [layer.drift for layer in activations]
            drift = None if rows.shape[0] < self.min_size else any(v is True for v in verdicts)
            report = MonitoringReport(
                enabled=True, alpha=self.alpha, window=window, drift=drift, features=features, activations=activations
            )
        if self.gauges is not None:
            self.gauges.update(report)
        return report

    def _tests(self, run: MonitoredRun, rows: FloatArray) -> tuple[list[FeatureDrift], list[LayerDrift]]:
        # Bonferroni over families (alpha / families each), then within a family over its tests or units:
        # the probability of any false alarm in the whole report stays below alpha.
        level = self.alpha / run.families
        per_test = level / FEATURE_TESTS
        ref, n = run.features, self.min_size
        features = [
            chi2_test(rows[:, PCLASS_INDEX], ref.pclass_counts, per_test, n),
            ks_test("fare", rows[:, FARE_INDEX], ref.fare, per_test, n, run.fare_quantiles),
            ks_test("age", rows[:, AGE_INDEX], ref.age, per_test, n, run.age_quantiles),
            missing_rate_test(rows[:, AGE_INDEX], ref.age, per_test, n),
        ]
        activations = []
        for model in run.models:
            # The model sees a missing age as the training median: its layers are tested on what it computes.
            pres = hidden_preactivations(model.layers, preprocess(rows, model.preprocessing))
            for probe, pre in zip(model.probes, pres, strict=True):
                activations.append(layer_test(model.name, probe.name, pre, probe.expected, probe.sd, level, n))
        return features, activations
