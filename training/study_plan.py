"""The study's declared plan: primary outcome, claims, tests, margins and verdict rules, fixed before the numbers.

This table is the one versioned place the verdicts are read under; its SHA-256 goes into study.json, and a test
refuses a committed study run under another plan. Change it only with a new `PLAN_VERSION` and a rerun.

Verdict rules (`training.study_claims`):
- A difference claim ("BN gives ...") is tested by the Nadeau-Bengio corrected paired t test (two-sided); it
  "holds" when its Holm-adjusted p is below `ALPHA` and the estimate lies in the claimed direction, "does not hold"
  when it is below `ALPHA` the other way, and is "not shown" otherwise.
- A claim of no effect ("not needed", "adds nothing", "as good as") is tested for equivalence: two one-sided
  corrected t tests (TOST) against +-`EQUIVALENCE_MARGIN`; it "holds" when the Holm-adjusted TOST p is below
  `ALPHA` and is "not shown" otherwise: the absence of a difference is never read as equivalence.
- Collapse rates are compared with an exact test (McNemar's, on the paired runs); same rule as a difference.
- Holm's correction runs over every claim the study tested (the parts not run are "not shown" and not counted).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Final, Literal

from survival.study import Scaling

PLAN_VERSION: Final[str] = "3.0"
ALPHA: Final[float] = 0.05
POWER: Final[float] = 0.80
# Two accuracy points: about one passenger in 50, below which the two variants are treated as interchangeable.
EQUIVALENCE_MARGIN: Final[float] = 0.02
# The primary outcome: the blog post's own comparison (final validation accuracy, BN minus plain, raw inputs).
PRIMARY: Final[str] = "accuracy/raw"
# Effects (accuracy points) the power statement gives the seeds needed for.
TARGET_EFFECTS: Final[tuple[float, ...]] = (1.0, 2.5)
# The default design (`bench/bench_study.py --designs` measures the candidates' MDE in the same time, 60 s for the
# 2 x 2): repeated stratified 10-fold detected the smallest primary effect (hold-out and 5-fold: larger floors).
DEFAULT_SEEDS: Final[int] = 30
DEFAULT_FOLDS: Final[int | None] = 10
# Training-loss thresholds for epochs-to-threshold: a range, so no verdict rests on one level.
LOSS_THRESHOLDS: Final[tuple[float, ...]] = (0.64, 0.62, 0.60, 0.58, 0.56, 0.54, 0.52, 0.50)

Kind = Literal["difference", "equivalence", "collapse"]
Part = Literal["default", "sweep", "regularization", "long", "ics"]


@dataclass(frozen=True)
class PlannedClaim:
    """One claim: what it says, on which scalings, how it is measured and tested, and which part measures it."""

    id: str
    claim: str
    measurement: str
    kind: Kind
    part: Part
    higher_is_better: bool
    scalings: tuple[Scaling, ...] = ("raw", "standardized")


CLAIMS: Final[tuple[PlannedClaim, ...]] = (
    PlannedClaim("accuracy", "BN gives a higher final validation accuracy", "final-epoch accuracy, BN minus plain",
                 "difference", "default", True),
    PlannedClaim("steadier_accuracy", "BN gives a steadier validation curve",
                 "std of validation accuracy over the last 50 epochs, BN minus plain", "difference", "default", False),
    PlannedClaim("steadier_loss", "BN gives a steadier validation loss",
                 "std of validation loss over the last 50 epochs, BN minus plain", "difference", "default", False),
    PlannedClaim("peak_fall", "BN falls back less from its peak",
                 "best-epoch minus final accuracy (optimistic peak), BN minus plain", "difference", "default", False),
    PlannedClaim("trains_faster", "BN trains faster",
                 "area under the training-loss curve (mean training loss over epochs), BN minus plain",
                 "difference", "default", False),
    PlannedClaim("regularizes", "BN regularizes (a smaller generalization gap)",
                 "validation minus training log-loss, BN minus plain", "difference", "default", False),
    PlannedClaim("more_than_scaling", "BN's gain on raw inputs is more than z-scoring the inputs gives",
                 "final accuracy, BN on raw inputs minus plain on z-scored inputs", "difference", "default", True,
                 ("raw",)),
    PlannedClaim("same_as_scaling", "BN on raw inputs is as good as z-scoring the inputs (within the margin)",
                 "final accuracy, BN on raw inputs minus plain on z-scored inputs", "equivalence", "default", True,
                 ("raw",)),
    PlannedClaim("adds_nothing", "With z-scored inputs BN adds nothing (within the margin)",
                 "final-epoch accuracy, BN minus plain", "equivalence", "default", True, ("standardized",)),
    PlannedClaim("higher_lr", "BN allows higher learning rates",
                 "final accuracy above each optimizer's lowest rate (mean over those cells), BN minus plain",
                 "difference", "sweep", True),
    PlannedClaim("fewer_collapses", "BN collapses less at higher learning rates",
                 "runs predicting one class above each optimizer's lowest rate, BN against plain (paired)",
                 "collapse", "sweep", False),
    PlannedClaim("no_regularizer_needed", "With BN, dropout and weight decay are not needed (within the margin)",
                 "BN's final accuracy with dropout 0.2, and with weight decay 1e-3, minus without (both equivalent)",
                 "equivalence", "regularization", True),
    PlannedClaim("longer_helps_bn", "More epochs would help BN more",
                 "accuracy gain from epoch 200 to 1000, BN minus plain", "difference", "long", True),
    PlannedClaim("ics_hidden2", "BN reduces internal covariate shift at hidden layer 2",
                 "Santurkar et al.'s ICS, ||G - G'|| of hidden layer 2's weights, BN minus plain",
                 "difference", "ics", False),
    PlannedClaim("ics_output", "BN reduces internal covariate shift at the output layer",
                 "Santurkar et al.'s ICS, ||G - G'|| of the output layer's weights, BN minus plain",
                 "difference", "ics", False),
    PlannedClaim("drift_hidden2", "BN reduces the drift of hidden layer 2's input distribution",
                 "epoch-to-epoch change of its inputs' means and spreads, BN minus plain", "difference", "ics", False),
    PlannedClaim("drift_output", "BN reduces the drift of the output layer's input distribution",
                 "epoch-to-epoch change of its inputs' means and spreads, BN minus plain", "difference", "ics", False),
)  # fmt: skip


def plan_dict() -> dict[str, object]:
    """The plan as plain data (what its hash covers)."""
    return {
        "version": PLAN_VERSION,
        "alpha": ALPHA,
        "power": POWER,
        "equivalence_margin": EQUIVALENCE_MARGIN,
        "primary": PRIMARY,
        "target_effects": list(TARGET_EFFECTS),
        "default_seeds": DEFAULT_SEEDS,
        "default_folds": DEFAULT_FOLDS,
        "loss_thresholds": list(LOSS_THRESHOLDS),
        "claims": [asdict(c) for c in CLAIMS],
        "rules": __doc__,
    }


def plan_sha256() -> str:
    """SHA-256 of the plan's canonical JSON: any change of a claim, test, margin, rule or default changes it."""
    text = json.dumps(plan_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
