"""The study's tests and verdict rules, recomputed independently with scipy and statsmodels: corrected t, TOST,
exact McNemar, the sign test, Holm, power, calibration; and the plan's rules on constructed numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.calibration import calibration_curve
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from survival.study import ArmSummary, EpochPoint, ReliabilityBin
from training.study_arms import calibration
from training.study_claims import adjust, measure
from training.study_plan import ALPHA, EQUIVALENCE_MARGIN
from training.study_stats import (
    corrected_t_test,
    exact_mcnemar,
    holm,
    mde,
    mde_limit,
    power_of,
    seeds_needed,
    sign_test,
    stat,
    tost,
)

RATIO = 179 / 712


def test_corrected_t_test_is_scipys_t_test_with_the_corrected_variance() -> None:
    diffs = [0.011, 0.028, -0.006, 0.034, 0.017, 0.0, 0.022, 0.013]
    assert corrected_t_test(diffs, 0.0) == pytest.approx(sps.ttest_1samp(diffs, 0.0).pvalue)
    # Corrected: the statistic shrinks by sqrt(1 + J * ratio); scipy's t distribution, J - 1 degrees of freedom.
    t = sps.ttest_1samp(diffs, 0.0).statistic / math.sqrt(1 + len(diffs) * RATIO)
    assert corrected_t_test(diffs, RATIO) == pytest.approx(2 * sps.t.sf(abs(t), len(diffs) - 1))


def test_tost_is_statsmodels_paired_tost_and_needs_the_whole_interval_inside_the_margin() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.7, 0.02, 30)
    for shift in (0.0, 0.01, 0.03):
        b = a - shift + rng.normal(0, 0.01, 30)
        expected = ttost_paired(a, b, -EQUIVALENCE_MARGIN, EQUIVALENCE_MARGIN)[0]
        assert tost((a - b).tolist(), 0.0, EQUIVALENCE_MARGIN) == pytest.approx(expected)
    # A mean difference of zero with a wide spread: nothing is shown equivalent (absence of a difference).
    wide = (0.05 * rng.standard_normal(10)).tolist()
    wide = [d - float(np.mean(wide)) for d in wide]
    assert corrected_t_test(wide, RATIO) == pytest.approx(1.0)
    assert tost(wide, RATIO, EQUIVALENCE_MARGIN) > 0.3


def test_exact_mcnemar_and_sign_test_agree_with_statsmodels_and_scipy() -> None:
    bn = [False] * 18 + [True, False]
    plain = [True] * 9 + [False] * 9 + [True, True]
    only_bn, only_plain, p = exact_mcnemar(bn, plain)
    assert (only_bn, only_plain) == (0, 10)
    pairs = list(zip(bn, plain, strict=True))
    table = [[sum(x and y for x, y in pairs), only_bn], [only_plain, sum(not x and not y for x, y in pairs)]]
    assert p == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert exact_mcnemar([False, False], [False, False]) == (0, 0, 1.0)
    less, more, ties, p = sign_test([3, 5, 9, 9, 2, 7], [4, 8, 9, 12, 3, 6])
    assert (less, more, ties) == (4, 1, 1)
    assert p == pytest.approx(sps.binomtest(4, 5, 0.5).pvalue)


def test_holm_is_the_step_down_procedure() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.2]
    # By hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, made monotone, capped at 1.
    expected = {3: 0.025, 0: 0.04, 2: 0.09, 1: 0.09, 4: 0.2}
    assert holm(p) == pytest.approx([expected[i] for i in range(5)])
    assert holm([]) == []


def test_mde_is_statsmodels_t_test_power_and_the_correction_sets_a_floor() -> None:
    for n in (3, 10, 30, 300):
        effect_size = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
        assert mde(2.0, n, 0.0, 0.05, 0.8) == pytest.approx(2.0 * effect_size, rel=1e-6)
    # With the correction the power at the MDE is the target, and the MDE never falls below the floor.
    d = mde(2.7, 30, RATIO, 0.05, 0.8)
    se = math.sqrt((1 / 30 + RATIO) * 2.7**2)
    assert power_of(d, se, 29, 0.05) == pytest.approx(0.8)
    floor = mde_limit(2.7, RATIO, 0.05, 0.8)
    assert floor == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * 2.7 * math.sqrt(RATIO))
    assert floor < mde(2.7, 10_000, RATIO, 0.05, 0.8) < floor * 1.01
    # Seeds needed: the fewest whose MDE reaches the effect; none when the floor is above it.
    needed = seeds_needed(4.0, 2.7, 1, RATIO, 0.05, 0.8)
    assert needed is not None
    assert mde(2.7, needed, RATIO, 0.05, 0.8) <= 4.0 < mde(2.7, needed - 1, RATIO, 0.05, 0.8)
    assert seeds_needed(2.5, 2.7, 1, RATIO, 0.05, 0.8) is None


def test_calibration_error_and_reliability_match_scikit_learns_calibration_curve() -> None:
    rng = np.random.default_rng(2)
    probs = [rng.uniform(0, 1, 200) for _ in range(3)]
    labels = [(rng.uniform(0, 1, 200) < p**1.5).astype(np.int64) for p in probs]
    eces, diagram = calibration(probs, labels)
    for p, y, ece in zip(probs, labels, eces, strict=True):
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
        counts = np.histogram(p, bins=np.linspace(0, 1, 11))[0]
        assert ece == pytest.approx(float(np.sum(counts[counts > 0] * np.abs(observed - predicted)) / len(p)))
    assert sum(b.count for b in diagram) == 600
    assert isinstance(diagram[0], ReliabilityBin)


def _arm(variant: str, scaling: str, accuracy: list[float]) -> ArmSummary:
    """An arm whose final accuracies are given and whose other figures are the same for every arm."""
    n = len(accuracy)
    same = stat([0.5 + 0.001 * i for i in range(n)])
    return ArmSummary.model_validate(
        {
            "variant": variant,
            "scaling": scaling,
            "accuracy": stat(accuracy),
            **dict.fromkeys(("log_loss", "roc_auc", "train_accuracy", "gap_accuracy", "gap_log_loss", "ece"), same),
            **dict.fromkeys(("acc_std_last", "loss_std_last", "peak_to_final", "best_epoch_accuracy"), same),
            **dict.fromkeys(("val_loss_auc", "train_loss_auc"), same),
            "epochs_to_threshold": [[10] * n],
            "reliability": [],
            "collapsed": 0,
            "near_collapsed": 0,
            "accuracy_without_collapsed": stat(accuracy),
            "at_epochs": [EpochPoint(epoch=200, accuracy=stat(accuracy), log_loss=same)],
            **{key: [0.7] for key in ("curve_mean", "curve_std", "curve_half95", "train_loss_mean")},
            **{key: [0.0] for key in ("train_loss_half95", "val_loss_mean", "val_loss_half95")},
        }
    )


def _claims(bn_raw: list[float], plain_raw: list[float], bn_std: list[float], plain_std: list[float]) -> dict[str, Any]:
    arms = {
        "batchnorm/raw": _arm("batchnorm", "raw", bn_raw),
        "plain/raw": _arm("plain", "raw", plain_raw),
        "batchnorm/standardized": _arm("batchnorm", "standardized", bn_std),
        "plain/standardized": _arm("plain", "standardized", plain_std),
    }
    rows = adjust(measure(arms, ("raw", "standardized"), main_epoch=200, ratio=RATIO, sweep=None,
                          regularization=None, ics=None))  # fmt: skip
    return {c.id: c for c in rows}


def test_verdicts_read_holm_adjusted_p_in_the_claimed_direction() -> None:
    rng = np.random.default_rng(3)
    base = (0.70 + 0.01 * rng.standard_normal(30)).tolist()
    ahead = [b + 0.08 + 0.005 * rng.standard_normal() for b in base]
    found = _claims(bn_raw=ahead, plain_raw=base, bn_std=base, plain_std=ahead)
    holds, fails = found["accuracy/raw"], found["accuracy/standardized"]
    assert (holds.verdict, fails.verdict) == ("holds", "does not hold")
    # The raw p-value is scipy's corrected t test on the paired differences; Holm over every tested claim.
    diffs = np.subtract(ahead, base)
    t = diffs.mean() / math.sqrt((1 / 30 + RATIO) * diffs.var(ddof=1))
    assert holds.p_value == pytest.approx(2 * sps.t.sf(abs(t), 29))
    tested = [c for c in found.values() if c.p_value is not None]
    assert [c.p_holm for c in tested] == pytest.approx(holm([c.p_value or 0.0 for c in tested]))
    assert all(c.verdict == "not shown" for c in found.values() if c.p_value is None)
    assert found["higher_lr/raw"].result == "not run (--sweep)"
    # No difference measured on standardized inputs' other metrics (identical arms): not shown, never "holds".
    assert found["steadier_accuracy/standardized"].verdict == "not shown"


def test_a_claim_of_no_effect_needs_equivalence_not_an_absent_difference() -> None:
    rng = np.random.default_rng(4)
    base = (0.70 + 0.01 * rng.standard_normal(30)).tolist()
    noisy = [b + 0.03 * rng.standard_normal() for b in base]  # no mean difference, wide spread
    close = [b + 0.002 * rng.standard_normal() for b in base]  # no difference, tight
    wide = _claims(bn_raw=base, plain_raw=base, bn_std=noisy, plain_std=base)["adds_nothing/standardized"]
    assert wide.test == "corrected TOST"
    assert wide.ci95 is not None
    assert wide.ci95[0] < 0 < wide.ci95[1]
    assert wide.verdict == "not shown"
    tight = _claims(bn_raw=base, plain_raw=base, bn_std=close, plain_std=base)["adds_nothing/standardized"]
    assert tight.p_holm is not None
    assert tight.p_holm < ALPHA
    assert tight.verdict == "holds"
    assert tight.margin == EQUIVALENCE_MARGIN
