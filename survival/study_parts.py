"""The parts of the study's results file that the analysis adds: ICS and drift per layer, the speed curve, the
plan's reference and the power statement (schema only, as `survival.study`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from survival.variants import VariantName

Scaling = Literal["raw", "standardized"]


class Frozen(BaseModel):
    """A frozen model that refuses unknown fields and non-finite numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Stat(Frozen):
    """A quantity over the resamples: mean, sample std (ddof=1) and the per-resample values in order."""

    mean: float
    std: float
    values: list[float]


class LayerIcs(Frozen):
    """Santurkar et al.'s (2018) internal covariate shift of one layer: its weights' gradient on a training batch
    before and after the layers below it take their optimizer update, compared."""

    layer: str = Field(description='"hidden layer 2", ..., "output layer".')
    l2: Stat = Field(description="||G - G'||, mean over the measured steps.")
    cosine: Stat = Field(description="cos(G, G'), mean over the measured steps (1: unchanged direction).")


class LayerDrift(Frozen):
    """How far one layer's input distribution (the previous block's activations) moves from epoch to epoch."""

    layer: str = Field(description='The layer whose inputs drift: "hidden layer 2", ..., "output layer".')
    drift: Stat = Field(
        description="Mean over epochs and units of (|change in the mean| + |change in the std|) / previous std of "
        "the layer's inputs on the training set."
    )


class LayerShift(Frozen):
    """Internal covariate shift (Santurkar et al.'s definition), input-distribution drift and gradient
    predictiveness of one arm, per layer that has layers below it."""

    variant: VariantName
    scaling: Scaling
    ics: list[LayerIcs]
    input_drift: list[LayerDrift]
    gradient_change: Stat = Field(
        description="Gradient predictiveness: mean over probes of ||grad(w) - grad(w - 0.1 * grad(w))|| / ||grad(w)||."
    )


class ThresholdPoint(Frozen):
    """Epochs to one training-loss threshold, BN against plain, resample by resample (a paired sign test)."""

    threshold: float
    median_batchnorm: float | None = Field(description="Median over the resamples that reached it (None: none).")
    median_plain: float | None
    reached_batchnorm: int
    reached_plain: int
    bn_faster: int = Field(description="Resamples where BN got there first (a run that never did counts as last).")
    plain_faster: int
    ties: int
    p_sign: float = Field(description="Two-sided exact sign test (binomial on the untied resamples); descriptive.")


class SpeedCurve(Frozen):
    """Epochs to each training-loss threshold on one input scaling."""

    scaling: Scaling
    points: list[ThresholdPoint]


class PlanRef(Frozen):
    """The declared plan the verdicts were read under (training/study_plan.py) and its hash."""

    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    alpha: float
    power: float
    equivalence_margin: float = Field(description="Equivalence margin in accuracy (0.02: two points).")
    primary: str = Field(description="The claim id of the primary outcome.")
    family_size: int = Field(description="Claims tested, over which p_holm is adjusted.")


class SeedsNeeded(Frozen):
    """How many seeds of this design the primary outcome needs to detect `effect_points` at the plan's power."""

    effect_points: float
    seeds: int | None = Field(description="None: no number of seeds reaches it with this design (the floor).")


class Power(Frozen):
    """Power of the primary outcome's test, from its measured spread and the corrected variance."""

    outcome: str
    resamples: int
    sd_points: float = Field(description="Sample std of the paired differences over resamples, in points.")
    se_points: float = Field(description="Corrected standard error of the mean difference, in points.")
    mde_points: float = Field(description="Smallest true difference detected with the plan's power at its alpha.")
    mde_limit_points: float = Field(description="The MDE with infinitely many seeds (the correction's floor).")
    seeds_needed: list[SeedsNeeded]
