"""GET /monitoring's response model: the window, the verdict, each feature's test and each hidden layer's shift."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from survival.variants import VariantName

FeatureName = Literal["pclass", "fare", "age", "age_missing"]
TestName = Literal["chi2_contingency", "ks_2samp", "two_proportion_z"]


class Distribution(BaseModel):
    """Live vs training, for the dashboard: quantiles (values at `labels` probabilities) or fractions per label."""

    kind: Literal["quantiles", "fractions"]
    labels: list[str]
    reference: list[float]
    window: list[float] | None = Field(description="None while the window has no value of this feature.")


class FeatureDrift(BaseModel):
    """One input feature's two-sample test of the window against the training split."""

    feature: FeatureName
    test: TestName
    statistic: float | None = Field(description="KS D, chi-square, or the signed z; None: not enough data.")
    p_value: float | None = Field(description="None while the test's sample is below the minimum window size.")
    threshold: float = Field(description="Drift when p_value < threshold (alpha after Bonferroni).")
    drift: bool | None
    n_window: int = Field(description="Values the test used from the window (known values for Fare and Age).")
    n_reference: int
    distribution: Distribution


class LayerDrift(BaseModel):
    """One hidden layer of one model: per unit, the window's mean pre-activation against the training split's."""

    model: VariantName
    layer: str
    units: int
    largest_z: float | None = Field(description="The z of largest magnitude, signed; None: not enough data.")
    z_threshold: float = Field(description="A unit is out of bounds when |z| > z_threshold (Bonferroni).")
    units_out_of_bounds: int | None
    drift: bool | None
    z: list[float | None] = Field(description="Per unit (None for a unit constant on the training split).")


class WindowInfo(BaseModel):
    """This worker's window of served passengers."""

    size: int
    capacity: int
    min_size: int = Field(description="Below this many passengers the tests report null: not enough data.")
    since: datetime | None = Field(description="Arrival time of the oldest passenger in the window.")
    reset_at: datetime = Field(description="When the window was last emptied (start, or a swap to a new reference).")
    run_id: str | None = Field(description="The run whose reference the window is compared with.")


class MonitoringReport(BaseModel):
    """Is the traffic still the data the models learned from? Null verdicts mean not enough data yet."""

    enabled: bool
    alpha: float | None = Field(description="False-alarm level of the whole verdict (MONITOR_ALPHA).")
    window: WindowInfo | None
    drift: bool | None = Field(description="True when any feature or any layer drifted; None: not enough data.")
    reference_error: str | None = Field(
        default=None, description="Why the served run cannot be monitored (e.g. it has no reference.json)."
    )
    features: list[FeatureDrift] = Field(default_factory=list)
    activations: list[LayerDrift] = Field(default_factory=list)
