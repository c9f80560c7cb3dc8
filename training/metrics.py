"""Validation metrics, computed by scikit-learn rather than by hand."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn import metrics as skm

from survival.checkpoint import Baseline, ValidationMetrics
from survival.features import FloatArray
from survival.served import DECISION_THRESHOLD
from training.data import IntArray


def validation_metrics(
    labels: IntArray, probabilities: FloatArray, threshold: float = DECISION_THRESHOLD
) -> ValidationMetrics:
    """Accuracy, log-loss, ROC AUC, precision, recall, F1, Brier and the confusion matrix at `threshold`."""
    probs = np.clip(probabilities.astype(np.float64), 0.0, 1.0)
    predicted = (probs >= threshold).astype(np.int64)
    both_classes = len(np.unique(labels)) == 2
    return ValidationMetrics(
        n=int(labels.shape[0]),
        threshold=threshold,
        accuracy=float(skm.accuracy_score(labels, predicted)),
        log_loss=float(skm.log_loss(labels, probs, labels=[0, 1])),
        roc_auc=float(skm.roc_auc_score(labels, probs)) if both_classes else None,
        precision=float(skm.precision_score(labels, predicted, zero_division=0)),
        recall=float(skm.recall_score(labels, predicted, zero_division=0)),
        f1=float(skm.f1_score(labels, predicted, zero_division=0)),
        brier=float(skm.brier_score_loss(labels, probs)),
        confusion_matrix=skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    )


def majority_baseline(train_labels: IntArray, val_labels: IntArray) -> Baseline:
    """Accuracy on the validation split of always predicting the training split's majority class."""
    majority = int(np.bincount(train_labels, minlength=2).argmax())
    accuracy = float(skm.accuracy_score(val_labels, np.full_like(val_labels, majority)))
    return Baseline(majority_class=majority, majority_accuracy=accuracy)


def metrics_table(rows: Iterable[tuple[str, ValidationMetrics]]) -> list[str]:
    """A header and one plain-text line per model: accuracy, log-loss, ROC AUC, F1, Brier."""
    lines = [f"{'variant':<10} {'accuracy':>8} {'log_loss':>8} {'roc_auc':>8} {'f1':>6} {'brier':>6}"]
    for name, m in rows:
        auc = f"{m.roc_auc:.3f}" if m.roc_auc is not None else "n/a"
        lines.append(f"{name:<10} {m.accuracy:>8.3f} {m.log_loss:>8.3f} {auc:>8} {m.f1:>6.3f} {m.brier:>6.3f}")
    return lines
