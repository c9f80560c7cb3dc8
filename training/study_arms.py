"""Train every arm on every resample (as few stacks as the split sizes allow) and summarise each arm."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from scipy import stats as sps
from tqdm import tqdm

from survival.model import VARIANTS, VariantName
from survival.study import ArmSummary, EpochPoint, ReliabilityBin, Scaling, arm_name
from training.batched import Probe, train_batched
from training.data import Dataset, IntArray
from training.loop import TrainConfig
from training.metrics import validation_metrics
from training.study_data import Slot, labels, stacks
from training.study_stats import corrected_se, stat

# A run "nearly collapsed" when at least this share of the validation rows get the same predicted class.
NEAR_COLLAPSE_SHARE: Final[float] = 0.95
# Where the length-of-training table reads the curves (those not beyond the run).
LENGTH_EPOCHS: Final[tuple[int, ...]] = (25, 50, 100, 200, 500, 1000)
WINDOW: Final[int] = 50
# Equal-width bins of the predicted survival probability for the calibration error and the reliability diagram.
CALIBRATION_BINS: Final[int] = 10

Float2D = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ArmRuns:
    """One arm's runs in resample order: curves (R, 4, epochs), validation logits at the main epoch, labels."""

    variant: VariantName
    scaling: Scaling
    curves: npt.NDArray[np.float64]
    logits: list[npt.NDArray[np.float64]]
    train_labels: list[IntArray]
    val_labels: list[IntArray]


def train_arms(
    dataset: Dataset,
    slots: Sequence[Slot],
    config: TrainConfig,
    *,
    main_epoch: int,
    label: str,
    progress: bool,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
    probe: Probe | None = None,
) -> dict[str, ArmRuns]:
    """Both variants on every slot, trained for `config.epochs`; logits kept after `main_epoch` epochs."""
    gathered: dict[tuple[VariantName, Scaling], dict[int, tuple[Float2D, npt.NDArray[np.float64], Slot]]] = {}
    groups = stacks(slots)
    with tqdm(
        total=config.epochs * len(groups), desc=label, unit="epoch", disable=not progress, file=sys.stderr
    ) as bar:
        for group, data in groups:
            result = train_batched(
                data,
                VARIANTS,
                config,
                lambda _: bar.update(1),
                dropout=dropout,
                weight_decay=weight_decay,
                snapshots=(main_epoch,),
                probe=probe,
            )
            for i, slot in enumerate(group):
                for variant in VARIANTS:
                    m = result.index(variant, i)
                    logits = result.snapshots[main_epoch][m].to(torch.float64).numpy()
                    gathered.setdefault((variant, slot.scaling), {})[slot.resample] = (
                        result.curves[:, m, :].numpy(),
                        logits,
                        slot,
                    )
    arms: dict[str, ArmRuns] = {}
    for (variant, scaling), by_resample in gathered.items():
        ordered = [by_resample[r] for r in sorted(by_resample)]
        arms[arm_name(variant, scaling)] = ArmRuns(
            variant=variant,
            scaling=scaling,
            curves=np.stack([c for c, _, _ in ordered]),
            logits=[lg for _, lg, _ in ordered],
            train_labels=[labels(dataset, s)[0] for _, _, s in ordered],
            val_labels=[labels(dataset, s)[1] for _, _, s in ordered],
        )
    return arms


def collapse_counts(runs: ArmRuns) -> tuple[list[bool], list[bool], list[bool]]:
    """Per run: collapsed (one class for every row, or non-finite outputs), nearly collapsed, diverged."""
    collapsed, near, diverged = [], [], []
    for logits in runs.logits:
        finite = bool(np.isfinite(logits).all())
        # NaN compares False: a diverged run predicts one class, as the trainer would.
        share = float(max((logits >= 0).mean(), (~(logits >= 0)).mean()))
        collapsed.append(not finite or share == 1.0)
        near.append(finite and NEAR_COLLAPSE_SHARE <= share < 1.0)
        diverged.append(not finite)
    return collapsed, near, diverged


def epochs_to_threshold(curves: npt.NDArray[np.float64], threshold: float, epochs: int) -> list[int | None]:
    """Per run, the first epoch (1-based, within `epochs`) whose training loss is below `threshold`."""
    out: list[int | None] = []
    for train_loss in curves[:, 0, :epochs]:
        below = np.flatnonzero(train_loss < threshold)
        out.append(int(below[0]) + 1 if below.size else None)
    return out


def calibration(
    probabilities: Sequence[npt.NDArray[np.float64]], labels_: Sequence[IntArray]
) -> tuple[list[float], list[ReliabilityBin]]:
    """Per run, the expected calibration error (bin-weighted |observed rate - mean prediction|); and the
    reliability diagram of all runs pooled."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)

    def bins(p: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        # Bin i holds [edge i, edge i+1); a prediction of exactly 1 goes in the last bin.
        return np.clip(np.searchsorted(edges, p, side="right") - 1, 0, CALIBRATION_BINS - 1)

    eces = []
    for p, y in zip(probabilities, labels_, strict=True):
        b = bins(p)
        gaps = [abs(float(y[b == i].mean()) - float(p[b == i].mean())) * int((b == i).sum())
                for i in range(CALIBRATION_BINS) if (b == i).any()]  # fmt: skip
        eces.append(sum(gaps) / len(p))
    p_all, y_all = np.concatenate(list(probabilities)), np.concatenate(list(labels_))
    b_all = bins(p_all)
    diagram = [
        ReliabilityBin(
            low=float(edges[i]),
            high=float(edges[i + 1]),
            mean_predicted=float(p_all[b_all == i].mean()) if (b_all == i).any() else None,
            observed=float(y_all[b_all == i].mean()) if (b_all == i).any() else None,
            count=int((b_all == i).sum()),
        )
        for i in range(CALIBRATION_BINS)
    ]
    return eces, diagram


def _half95(values: npt.NDArray[np.float64], ratio: float) -> list[float]:
    """Per epoch, the half-width of the corrected 95 % interval of the mean over runs (rows of `values`)."""
    if values.shape[0] < 2:
        return [0.0] * values.shape[1]
    t = float(sps.t.ppf(0.975, values.shape[0] - 1))
    return [t * corrected_se(column.tolist(), ratio) for column in values.T]


def summarise(runs: ArmRuns, *, epochs: int, loss_thresholds: Sequence[float], ratio: float) -> ArmSummary:
    """One arm's statistics at epoch `epochs` (final-epoch) and along its curves; `ratio` (n_val / n_train)
    corrects the curves' 95 % bands as it corrects the comparisons."""
    curves = runs.curves[:, :, :epochs]
    metrics, probabilities = [], []
    for logits, y in zip(runs.logits, runs.val_labels, strict=True):
        if not bool(np.isfinite(logits).all()):
            raise ValueError(f"{runs.variant} on {runs.scaling} inputs diverged at the default settings")
        probabilities.append(1 / (1 + np.exp(-logits)))
        metrics.append(validation_metrics(y, probabilities[-1]))
    eces, diagram = calibration(probabilities, runs.val_labels)
    accuracy = [m.accuracy for m in metrics]
    aucs = [m.roc_auc for m in metrics]
    if any(a is None for a in aucs):
        raise ValueError("a validation split holds a single class, so ROC AUC is undefined")
    window = min(WINDOW, epochs)
    val_acc, val_loss, train_loss_curve = curves[:, 3, :], curves[:, 2, :], curves[:, 0, :]
    train_acc, train_loss = curves[:, 1, -1], curves[:, 0, -1]
    best = val_acc.max(axis=1)
    collapsed, near, _ = collapse_counts(runs)
    kept = [a for a, c in zip(accuracy, collapsed, strict=True) if not c]
    trained = runs.curves.shape[2]
    # The table's epochs within the run, plus the main epoch and the last one (a run may be shorter than 25).
    read_at = sorted({e for e in LENGTH_EPOCHS if e <= trained} | {epochs, trained})
    points = [
        EpochPoint(
            epoch=e,
            accuracy=stat(runs.curves[:, 3, e - 1].tolist()),
            log_loss=stat(runs.curves[:, 2, e - 1].tolist()),
        )
        for e in read_at
    ]
    return ArmSummary(
        variant=runs.variant,
        scaling=runs.scaling,
        accuracy=stat(accuracy),
        log_loss=stat([m.log_loss for m in metrics]),
        roc_auc=stat([a for a in aucs if a is not None]),
        train_accuracy=stat(train_acc.tolist()),
        gap_accuracy=stat((train_acc - val_acc[:, -1]).tolist()),
        gap_log_loss=stat((val_loss[:, -1] - train_loss).tolist()),
        acc_std_last=stat(val_acc[:, -window:].std(axis=1).tolist()),
        loss_std_last=stat(val_loss[:, -window:].std(axis=1).tolist()),
        peak_to_final=stat((best - val_acc[:, -1]).tolist()),
        best_epoch_accuracy=stat(best.tolist()),
        val_loss_auc=stat(val_loss.mean(axis=1).tolist()),
        train_loss_auc=stat(train_loss_curve.mean(axis=1).tolist()),
        epochs_to_threshold=[epochs_to_threshold(curves, t, epochs) for t in loss_thresholds],
        ece=stat(eces),
        reliability=diagram,
        collapsed=sum(collapsed),
        near_collapsed=sum(near),
        accuracy_without_collapsed=stat(kept) if kept else None,
        at_epochs=points,
        curve_mean=val_acc.mean(axis=0).tolist(),
        curve_std=(val_acc.std(axis=0, ddof=1) if len(val_acc) > 1 else np.zeros(epochs)).tolist(),
        curve_half95=_half95(val_acc, ratio),
        train_loss_mean=train_loss_curve.mean(axis=0).tolist(),
        train_loss_half95=_half95(train_loss_curve, ratio),
        val_loss_mean=val_loss.mean(axis=0).tolist(),
        val_loss_half95=_half95(val_loss, ratio),
    )
