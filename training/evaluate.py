"""Score the served checkpoint pair on any labelled CSV, with the checkpoints' own preprocessing."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from survival.checkpoint import ValidationMetrics
from survival.features import FloatArray, preprocess
from survival.model import VariantName
from survival.torch_checkpoint import Checkpoint
from training.data import Dataset
from training.metrics import metrics_table, validation_metrics


class EvaluatedData(BaseModel):
    """The scored file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file_name: str
    sha256: str
    n_rows: int
    positive_rate: float
    is_training_file: bool = Field(
        description="The file has the same bytes (sha256) as the run's training file. Only that is detected: the "
        "same passengers in another file (e.g. Kaggle's train.csv) score just as optimistically."
    )
    n_training_rows: int


class EvaluationReport(BaseModel):
    """Both checkpoints' metrics on one labelled file (printed by `python -m training evaluate --json`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    data: EvaluatedData
    models: dict[VariantName, ValidationMetrics]
    majority_accuracy: float


def predict_proba(checkpoint: Checkpoint, raw: FloatArray) -> FloatArray:
    """Survival probabilities of raw rows (NaN for a missing Age) under the checkpoint's preprocessing."""
    x = preprocess(raw, checkpoint.metadata.preprocessing)
    dtype = next(checkpoint.model.parameters()).dtype
    with torch.inference_mode():
        logits = checkpoint.model(torch.as_tensor(x, dtype=dtype))
        probs: FloatArray = torch.sigmoid(logits).to(torch.float64).numpy()
    return probs


def evaluate_pair(pair: dict[VariantName, Checkpoint], dataset: Dataset) -> EvaluationReport:
    """Metrics of each variant on `dataset`; flags a file the models were trained on (then optimistic)."""
    first = next(iter(pair.values())).metadata
    # The run's training rows are inside its own data file: scores there mix training and validation rows.
    is_training_file = dataset.sha256 == first.data.sha256
    majority = first.baseline.majority_class
    return EvaluationReport(
        run_id=first.run_id,
        data=EvaluatedData(
            file_name=dataset.file_name,
            sha256=dataset.sha256,
            n_rows=dataset.n_rows,
            positive_rate=float(dataset.labels.mean()),
            is_training_file=is_training_file,
            n_training_rows=first.data.n_train if is_training_file else 0,
        ),
        models={name: validation_metrics(dataset.labels, predict_proba(c, dataset.raw)) for name, c in pair.items()},
        majority_accuracy=float((dataset.labels == majority).mean()),
    )


def evaluation_table(report: EvaluationReport) -> str:
    """The report as a small plain-text table."""
    d = report.data
    lines = [
        f"run {report.run_id} on {d.file_name} (sha256 {d.sha256[:12]}): {d.n_rows} rows, "
        f"{100 * d.positive_rate:.1f} % survived",
        *metrics_table(report.models.items()),
    ]
    lines.append(f"{'majority':<10} {report.majority_accuracy:>8.3f}  (the training split's majority class)")
    if d.is_training_file:
        lines.append(
            f"note: this is the file the models were trained on; {d.n_training_rows} of its rows were training "
            "rows, so these figures are optimistic (the checkpoints' metadata holds the validation-only metrics)"
        )
    return "\n".join(lines)
