"""The study's power statement for the primary outcome and its plain-language verdict paragraph."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from survival.study import ArmSummary, Claim, Scaling, arm_name
from survival.study_parts import Power, SeedsNeeded
from training.study_claims import ORIGINAL_ACCURACY
from training.study_plan import ALPHA, POWER, TARGET_EFFECTS
from training.study_stats import corrected_se, mde, mde_limit, seeds_needed


def primary_scaling(scalings: Sequence[Scaling]) -> Scaling:
    """The scaling of the primary outcome: raw inputs (the experiment's), or the only one that ran."""
    return "raw" if "raw" in scalings else scalings[0]


def power(arms: dict[str, ArmSummary], scalings: Sequence[Scaling], folds: int | None, ratio: float) -> Power:
    """MDE of the primary outcome (corrected variance, the plan's alpha and power) and the seeds 1 and 2.5
    points would need with this design (None: beyond the correction's floor)."""
    scaling = primary_scaling(scalings)
    diffs = np.subtract(arms[arm_name("batchnorm", scaling)].accuracy.values,
                        arms[arm_name("plain", scaling)].accuracy.values)  # fmt: skip
    sd = 100 * float(diffs.std(ddof=1))
    per_seed = folds or 1
    return Power(
        outcome=f"final validation accuracy, BN minus plain, {scaling} inputs",
        resamples=int(diffs.size),
        sd_points=sd,
        se_points=100 * corrected_se((diffs).tolist(), ratio),
        mde_points=mde(sd, int(diffs.size), ratio, ALPHA, POWER),
        mde_limit_points=mde_limit(sd, ratio, ALPHA, POWER),
        seeds_needed=[
            SeedsNeeded(effect_points=e, seeds=seeds_needed(e, sd, per_seed, ratio, ALPHA, POWER))
            for e in TARGET_EFFECTS
        ],
    )


def _points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")


def power_sentence(p: Power, seeds: int, folds: int | None) -> str:
    """'With 30 seeds x 10-fold (300 resamples) the smallest difference ... is 3.2 points; ...'."""
    design = f"{seeds} seeds x {folds}-fold" if folds else f"{seeds} seeds"
    needs = "; ".join(
        f"{_points(n.effect_points)} would need {n.seeds} seeds" if n.seeds is not None
        else f"{_points(n.effect_points)} cannot be shown by this design with any number of seeds"
        for n in p.seeds_needed
    )  # fmt: skip
    return (
        f"Power: with {design} ({p.resamples} resamples) the smallest difference in the primary outcome that the "
        f"corrected test detects with {100 * POWER:.0f} % power at alpha {ALPHA:g} is {p.mde_points:.1f} points "
        f"(spread of the paired difference {p.sd_points:.1f} points, corrected standard error {p.se_points:.2f}; "
        f"{p.mde_limit_points:.1f} points with unlimited seeds); {needs}."
    )


def verdict(
    arms: dict[str, ArmSummary], claim_rows: Sequence[Claim], baseline_majority: float, p: Power, primary_id: str
) -> str:
    """A plain-language paragraph: the headline numbers, the primary outcome, the power and every verdict."""
    raw_bn, raw_plain = arms.get("batchnorm/raw"), arms.get("plain/raw")
    parts = []
    if raw_bn is not None and raw_plain is not None:
        n = len(raw_bn.accuracy.values)
        parts.append(
            f"On raw inputs over {n} resamples, final validation accuracy was {100 * raw_plain.accuracy.mean:.1f} % "
            f"± {100 * raw_plain.accuracy.std:.1f} without BN and {100 * raw_bn.accuracy.mean:.1f} % ± "
            f"{100 * raw_bn.accuracy.std:.1f} with BN (the original single run: {100 * ORIGINAL_ACCURACY['plain']:.0f} "
            f"% and {100 * ORIGINAL_ACCURACY['batchnorm']:.0f} %; always the majority class: "
            f"{100 * baseline_majority:.1f} %)."
        )
    primary = next((c for c in claim_rows if c.id == primary_id), None)
    if primary is not None:
        parts.append(f"Primary outcome ({primary.claim}, {primary.scaling} inputs): {primary.result}; "
                     f"{primary.verdict}. The smallest effect this design detects with {100 * POWER:.0f} % power is "
                     f"{p.mde_points:.1f} points.")  # fmt: skip
    tested = sum(c.p_value is not None for c in claim_rows)
    for scaling in ("raw", "standardized"):
        rows = [c for c in claim_rows if c.scaling == scaling]
        if not rows:
            continue
        groups = {v: [c.claim for c in rows if c.verdict == v] for v in ("holds", "does not hold", "not shown")}
        text = "; ".join(f"{v}: {', '.join(names)}" for v, names in groups.items() if names)
        parts.append(f"On {scaling} inputs (Holm over the {tested} claims tested) — {text}.")
    parts.append(
        "Best-epoch accuracies are picked on the validation set itself: they measure the fall from the peak, not a "
        "result."
    )
    return " ".join(parts)
