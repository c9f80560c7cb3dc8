"""The whole report (service/comparison/report.py): its parts recomputed independently, its edges, its verdict.

Scores are recomputed with sklearn on all labelled pairs and on the last `window` of them; the verdict must follow
the confidence sequence and quote it; the JSON must hold no NaN or Infinity whatever the input's size.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

import service.comparison
from service.comparison.report import LabelledPairs, UnlabelledPairs, comparison_report
from service.comparison.schemas import ComparisonReport, ModelScores
from survival.served import DECISION_THRESHOLD
from survival.variants import VARIANTS

POINTS = re.compile(r"\[([+-][\d.e-]+), ([+-][\d.e-]+)\] points")


def pairs(n: int, only_batchnorm: float, only_plain: float, seed: int) -> LabelledPairs:
    """n labelled pairs where only batchnorm is right with that probability, only plain with this, both 75 %."""
    rng = np.random.default_rng(seed)
    survived = rng.uniform(size=n) < 0.4
    kind = rng.choice(4, size=n, p=[0.75, only_batchnorm, only_plain, 0.25 - only_batchnorm - only_plain])
    batchnorm_right = (kind == 0) | (kind == 1)
    plain_right = (kind == 0) | (kind == 2)

    def probability(right: np.ndarray) -> np.ndarray:
        says_survived = right == survived
        return np.where(says_survived, rng.uniform(0.5, 1, size=n), rng.uniform(0, 0.5, size=n))

    return LabelledPairs(probability(batchnorm_right), probability(plain_right), survived.astype(np.int64))


def unlabelled(n: int, seed: int = 0) -> UnlabelledPairs:
    rng = np.random.default_rng(seed)
    return UnlabelledPairs(rng.uniform(size=n), rng.uniform(size=n))


def strict_json(report: ComparisonReport) -> dict[str, Any]:
    """The report's JSON, refusing NaN and +-Infinity (json.loads accepts them unless told not to)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the report's JSON")

    loaded: dict[str, Any] = json.loads(report.model_dump_json(), parse_constant=refuse)
    return loaded


def assert_scores(scores: ModelScores, p: np.ndarray, survived: np.ndarray) -> None:
    assert scores.n == p.size
    assert scores.accuracy == pytest.approx(accuracy_score(survived, p >= DECISION_THRESHOLD), abs=1e-15)
    assert scores.log_loss == pytest.approx(log_loss(survived, p, labels=[0, 1]), rel=1e-12)
    assert scores.brier == pytest.approx(brier_score_loss(survived, p, labels=[0, 1]), rel=1e-12)
    assert sum(b.n for b in scores.reliability) == p.size


def test_report_holds_every_part_over_all_pairs_and_the_recent_window() -> None:
    labelled = pairs(3000, 0.05, 0.04, seed=1)
    report = comparison_report(labelled, unlabelled(500), n_predictions=4000, window=1000)
    assert (report.n_predictions, report.n_labelled, report.window, report.alpha) == (4000, 3000, 1000, 0.05)
    y = labelled.survived
    right = {name: (labelled.probability(name) >= DECISION_THRESHOLD) == (y == 1) for name in VARIANTS}
    for name in VARIANTS:
        p = labelled.probability(name)
        assert_scores(report.models[name], p, y)
        assert_scores(report.recent.models[name], p[-1000:], y[-1000:])
        estimated = report.estimated[name]
        assert (estimated.n_unlabelled, estimated.calibrated_on) == (500, 3000)
        assert estimated.realised_accuracy == pytest.approx(right[name][-1000:].mean(), abs=1e-15)
    for section, n in ((report.paired, 3000), (report.recent.paired, 1000)):
        bn, pl = right["batchnorm"][-n:], right["plain"][-n:]
        assert section.n == n
        assert section.both_right == int((bn & pl).sum())
        assert section.both_wrong == int((~bn & ~pl).sum())
        assert section.only_batchnorm_right == int((bn & ~pl).sum())
        assert section.only_plain_right == int((~bn & pl).sum())
        assert section.accuracy_difference == pytest.approx(bn.mean() - pl.mean(), abs=1e-15)
    assert report.recent.n == 1000


def test_fewer_labelled_pairs_than_the_window_make_recent_the_same_as_all() -> None:
    report = comparison_report(pairs(400, 0.05, 0.05, seed=2), unlabelled(10), n_predictions=410, window=1000)
    assert report.recent.n == 400
    assert report.recent.models == report.models
    assert report.recent.paired == report.paired


def test_no_outcomes_yet_report_nulls_and_say_so() -> None:
    empty = np.array([], dtype=np.float64)
    report = comparison_report(LabelledPairs(empty, empty, empty.astype(np.int64)), unlabelled(0), 0, 1000)
    body = strict_json(report)
    assert body["n_labelled"] == 0
    for section in (body["paired"], body["recent"]["paired"]):
        assert [section[k] for k in ("accuracy_difference", "mcnemar_p", "interval", "confidence_sequence")] == [
            None
        ] * 4
    for name in VARIANTS:
        assert body["models"][name]["accuracy"] is None
        assert body["models"][name]["reliability"] == []
        assert body["estimated"][name] == {
            "n_unlabelled": 0,
            "expected_accuracy": None,
            "calibrated_on": 0,
            "realised_accuracy": None,
        }
    assert report.more_accurate is None
    assert report.verdict.startswith("No outcomes yet:")


@pytest.mark.parametrize(
    "labelled",
    [
        LabelledPairs(np.array([0.9]), np.array([0.2]), np.array([1])),  # n = 1
        LabelledPairs(np.full(7, DECISION_THRESHOLD), np.full(7, 0.0), np.ones(7, dtype=bool)),  # at the threshold
        LabelledPairs(np.linspace(0, 1, 150), np.linspace(1, 0, 150), np.zeros(150, dtype=np.int64)),  # one class
        LabelledPairs(np.zeros(120), np.ones(120), np.ones(120, dtype=np.int64)),  # confidently wrong and right
    ],
    ids=["one-pair", "at-threshold", "one-class", "certain"],
)
def test_edge_inputs_report_finite_json(labelled: LabelledPairs) -> None:
    for window in (1, 1000):
        for extra in (unlabelled(0), unlabelled(3)):
            report = comparison_report(labelled, extra, n_predictions=labelled.survived.size + 3, window=window)
            strict_json(report)
            assert report.paired.n == labelled.survived.size
            assert report.recent.n == min(window, labelled.survived.size)


def test_probabilities_at_the_threshold_count_as_predicting_survival() -> None:
    labelled = LabelledPairs(np.full(7, DECISION_THRESHOLD), np.full(7, 0.0), np.ones(7, dtype=bool))
    report = comparison_report(labelled, unlabelled(0), 7, 1000)
    assert (report.models["batchnorm"].accuracy, report.models["plain"].accuracy) == (1.0, 0.0)
    assert report.paired.only_batchnorm_right == 7


def quoted_interval(verdict: str) -> tuple[float, float]:
    found = POINTS.search(verdict)
    assert found is not None, verdict
    return float(found[1]), float(found[2])


@pytest.mark.parametrize(("only_batchnorm", "only_plain", "winner"), [(0.15, 0.05, "batchnorm"), (0.05, 0.15, "plain")])
def test_verdict_names_the_model_the_sequence_shows_more_accurate(
    only_batchnorm: float, only_plain: float, winner: str
) -> None:
    report = comparison_report(pairs(5000, only_batchnorm, only_plain, seed=3), unlabelled(100), 5100, 1000)
    low, high = report.paired.confidence_sequence or (0.0, 0.0)
    assert report.more_accurate == winner
    loser = "plain" if winner == "batchnorm" else "batchnorm"
    assert report.verdict.startswith(f"{winner} is more accurate than {loser} on the labelled traffic")
    assert "anytime-valid 95 % confidence sequence" in report.verdict
    shown = (low, high) if winner == "batchnorm" else (-high, -low)  # quoted as winner - loser
    assert quoted_interval(report.verdict) == pytest.approx((100 * shown[0], 100 * shown[1]), abs=0.05)
    assert shown[0] > 0


def test_verdict_does_not_claim_what_the_sequence_does_not_show() -> None:
    """Equal models: the sequence holds 0 and the verdict says so, without calling the models equal."""
    report = comparison_report(pairs(5000, 0.05, 0.05, seed=4), unlabelled(100), 5100, 1000, alpha=0.1)
    low, high = report.paired.confidence_sequence or (1.0, 1.0)
    assert low < 0 < high
    assert report.more_accurate is None
    assert report.verdict.startswith("Not shown: the anytime-valid 90 % confidence sequence")
    assert "includes 0" in report.verdict
    assert "this is not evidence that they are equal" in report.verdict
    assert quoted_interval(report.verdict) == pytest.approx((100 * low, 100 * high), abs=0.05)


def test_the_sequence_decides_even_where_mcnemar_would_reject() -> None:
    """A difference a fixed-n test calls significant but the anytime-valid sequence cannot yet show: no winner."""
    report = comparison_report(pairs(2000, 0.075, 0.045, seed=5), unlabelled(0), 2000, 1000)
    assert report.paired.mcnemar_p is not None
    assert report.paired.mcnemar_p < 0.05
    low, _ = report.paired.confidence_sequence or (1.0, 1.0)
    assert low < 0
    assert report.more_accurate is None
    assert report.verdict.startswith("Not shown:")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LabelledPairs(np.zeros(3), np.zeros(2), np.zeros(3, dtype=int)), "aligned"),
        (lambda: LabelledPairs(np.zeros(3), np.zeros(3), np.zeros(2, dtype=int)), "not aligned"),
        (lambda: LabelledPairs(np.array([0.1, np.nan]), np.zeros(2), np.zeros(2, dtype=int)), "NaN"),
        (lambda: LabelledPairs(np.zeros(2), np.array([0.1, 1.5]), np.zeros(2, dtype=int)), "outside"),
        (lambda: LabelledPairs(np.zeros(2), np.zeros(2), np.array([0, 2])), "other than 0 and 1"),
        (lambda: UnlabelledPairs(np.zeros((2, 2)), np.zeros((2, 2))), "1-D"),
        (lambda: comparison_report(pairs(10, 0.1, 0.1, 6), unlabelled(1), 11, window=0), "window"),
        (lambda: comparison_report(pairs(10, 0.1, 0.1, 6), unlabelled(1), 11, window=5, alpha=1.0), "alpha"),
    ],
)
def test_malformed_input_is_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_every_field_of_the_report_is_described_for_openapi() -> None:
    schema = ComparisonReport.model_json_schema()
    models = [schema, *schema["$defs"].values()]
    missing = [(m["title"], k) for m in models for k, v in m["properties"].items() if "description" not in v]
    assert missing == []


def test_the_statistics_import_only_numpy_pydantic_and_the_standard_library() -> None:
    """No scipy, statsmodels, sklearn or torch in the serving path: every import statement of the package checked."""
    allowed = {"numpy", "pydantic", "service", "survival", "__future__"} | set(sys.stdlib_module_names)
    imported = set()
    for path in Path(service.comparison.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "numpy" in imported
    assert imported <= allowed
