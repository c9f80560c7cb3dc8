"""How fast each variant trains: epochs until the training loss first falls below each of a range of thresholds.

One threshold can sit where the two training curves cross and say anything; the curve over a range cannot. Each
threshold gets a paired exact sign test (BN first or plain first, resample by resample). The sign tests are
descriptive (one per threshold, not in the claims' family, and uncorrected for the resamples' overlap); the
claim "BN trains faster" is tested on the area under the training-loss curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from survival.study import ArmSummary, Scaling, arm_name
from survival.study_parts import SpeedCurve, ThresholdPoint
from training.study_stats import sign_test


def _median(reached: Sequence[int | None]) -> float | None:
    values = [e for e in reached if e is not None]
    return float(np.median(values)) if values else None


def speed_curves(
    arms: dict[str, ArmSummary], scalings: Sequence[Scaling], thresholds: Sequence[float], epochs: int
) -> list[SpeedCurve]:
    """Per scaling and threshold: median epochs of each variant and the paired sign test, BN against plain."""
    out = []
    for scaling in scalings:
        bn, plain = arms[arm_name("batchnorm", scaling)], arms[arm_name("plain", scaling)]
        points = []
        for i, threshold in enumerate(thresholds):
            b, p = bn.epochs_to_threshold[i], plain.epochs_to_threshold[i]
            # A run that never got there ranks after every run that did (epochs + 1); two such runs tie.
            bn_faster, plain_faster, ties, p_sign = sign_test(
                [epochs + 1 if e is None else e for e in b], [epochs + 1 if e is None else e for e in p]
            )
            points.append(
                ThresholdPoint(
                    threshold=threshold,
                    median_batchnorm=_median(b),
                    median_plain=_median(p),
                    reached_batchnorm=sum(e is not None for e in b),
                    reached_plain=sum(e is not None for e in p),
                    bn_faster=bn_faster,
                    plain_faster=plain_faster,
                    ties=ties,
                    p_sign=p_sign,
                )
            )
        out.append(SpeedCurve(scaling=scaling, points=points))
    return out
