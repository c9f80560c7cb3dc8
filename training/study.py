"""The study: the trainer's protocol on many resamples, for both variants on raw and standardized inputs.

For seed s (exactly as `training.run.train_run` with `seed=s`): the stratified split with seed s (or its k
folds), preprocessing fitted on the training rows, initial weights from `build_model(config, s)` and the batch
order of a generator seeded with s, shared by the variants and scalings of that resample. Every arm trains in
as few batched computations as the split sizes allow. All results are final-epoch; the best epoch appears only
as a labelled, optimistic measure of how far the curve falls back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import torch

from survival.model import VARIANTS
from survival.study import (
    STUDY_FILE,
    Baselines,
    Regularization,
    RegularizationCell,
    Scaling,
    StudyData,
    StudyReport,
    StudySettings,
    SweepCell,
    Timings,
    arm_name,
)
from survival.study_parts import PlanRef
from training.data import Dataset
from training.loop import OptimizerName, TrainConfig, make_optimizer
from training.metrics import majority_baseline
from training.run import library_versions
from training.study_arms import ArmRuns, collapse_counts, summarise, train_arms
from training.study_claims import adjust, comparisons, measure
from training.study_data import Slot, labels, logistic_accuracy, make_slots
from training.study_plan import ALPHA, EQUIVALENCE_MARGIN, LOSS_THRESHOLDS, PLAN_VERSION, PRIMARY, plan_sha256
from training.study_plan import POWER as PLANNED_POWER
from training.study_speed import speed_curves
from training.study_stats import stat
from training.study_summary import power, primary_scaling, verdict

# Each optimizer's smallest rate is its reference for "higher learning rates".
SWEEP_GRID: Final[tuple[tuple[OptimizerName, tuple[float, ...]], ...]] = (
    ("adam", (1e-3, 1e-2, 5e-2)),
    ("sgd", (0.01, 0.1, 0.5)),
)
REGULARIZATION: Final[dict[Regularization, tuple[float, float]]] = {
    "dropout 0.2": (0.2, 0.0),
    "weight decay 1e-3": (0.0, 1e-3),
}
LONG_EPOCHS: Final[int] = 1000


@dataclass(frozen=True)
class StudyOptions:
    """What to run beyond the default 2 x 2 (and how to resample)."""

    seeds: Sequence[int] = tuple(range(10))
    folds: int | None = None
    scalings: Sequence[Scaling] = ("raw", "standardized")
    sweep: bool = False
    regularization: bool = False
    long: bool = False
    ics: bool = False
    loss_thresholds: Sequence[float] = LOSS_THRESHOLDS
    progress: bool = False


def _sweep_cell(runs: ArmRuns, optimizer: OptimizerName, lr: float, epochs: int) -> SweepCell:
    collapsed, near, diverged = collapse_counts(runs)
    val_loss = runs.curves[:, 2, :epochs]
    return SweepCell(
        optimizer=optimizer,
        learning_rate=lr,
        variant=runs.variant,
        scaling=runs.scaling,
        accuracy=stat(runs.curves[:, 3, epochs - 1].tolist()),
        # A diverged run's loss is not a number: the area is over the runs that stayed finite (None if none did).
        val_loss_auc=stat(finite) if (finite := [float(v) for v in val_loss.mean(axis=1) if np.isfinite(v)]) else None,
        collapsed_runs=collapsed,
        collapsed=sum(collapsed),
        near_collapsed=sum(near),
        diverged=sum(diverged),
        runs=len(runs.logits),
    )


def run_study(dataset: Dataset, config: TrainConfig, options: StudyOptions) -> StudyReport:
    """Train every arm on every resample (and the opt-in parts asked for), and describe what was found."""
    # The first optimizer made in a process imports torch._dynamo (seconds on a slow disk): a start-up cost of
    # every training command, not part of the study's time.
    make_optimizer(config.optimizer, [torch.nn.Parameter(torch.zeros(1))], config.learning_rate)
    start, start_cpu = time.perf_counter(), time.process_time()
    epochs = config.epochs
    slots = make_slots(dataset, options.seeds, options.folds, options.scalings, config)
    long_config = replace(config, epochs=max(epochs, LONG_EPOCHS)) if options.long else config
    runs = train_arms(dataset, slots, long_config, main_epoch=epochs, label="study", progress=options.progress)
    first = slots[0].split
    # Nadeau-Bengio's n_test / n_train (k-fold: 1 / (k - 1)).
    ratio = first.x_val.shape[0] / first.x_train.shape[0]
    arms = {k: summarise(r, epochs=epochs, loss_thresholds=options.loss_thresholds, ratio=ratio)
            for k, r in runs.items()}  # fmt: skip
    comps = comparisons(arms, options.scalings, ratio)
    baselines = _baselines(dataset, slots, options.scalings)
    timings = {"study": time.perf_counter() - start, "study_cpu": time.process_time() - start_cpu}
    sweep = _sweep(dataset, slots, config, options, timings) if options.sweep else None
    regularization = (
        _regularization(dataset, slots, config, options, runs, ratio, timings) if options.regularization else None
    )
    ics = None
    if options.ics:
        from training.study_ics import measure_shift

        t0 = time.perf_counter()
        ics = measure_shift(dataset, slots, config)
        timings["ics"] = time.perf_counter() - t0
    measured = measure(arms, options.scalings, main_epoch=epochs, ratio=ratio, sweep=sweep,
                       regularization=regularization, ics=ics)  # fmt: skip
    claim_rows = adjust(measured)
    study_power = power(arms, options.scalings, options.folds, ratio)
    primary_id = f"{PRIMARY.split('/')[0]}/{primary_scaling(options.scalings)}"
    return StudyReport(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        plan=PlanRef(
            version=PLAN_VERSION,
            sha256=plan_sha256(),
            alpha=ALPHA,
            power=PLANNED_POWER,
            equivalence_margin=EQUIVALENCE_MARGIN,
            primary=primary_id,
            family_size=sum(c.p_value is not None for c in claim_rows),
        ),
        data=StudyData(
            file_name=dataset.file_name,
            sha256=dataset.sha256,
            n_rows=dataset.n_rows,
            n_train=int(first.x_train.shape[0]),
            n_val=int(first.x_val.shape[0]),
        ),
        settings=StudySettings(
            seeds=list(options.seeds),
            folds=options.folds,
            resamples=len(slots) // len(options.scalings),
            epochs=epochs,
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
            optimizer=config.optimizer,
            hidden=list(config.hidden),
            val_fraction=config.val_fraction,
            scalings=list(options.scalings),
            loss_thresholds=list(options.loss_thresholds),
            device=config.device,
            dtype=str(config.dtype).removeprefix("torch."),
            threads=torch.get_num_threads(),
        ),
        timings_s=Timings(**timings),
        window=min(50, epochs),
        arms=arms,
        comparisons=comps,
        baselines=baselines,
        sweep=sweep,
        regularization=regularization,
        ics=ics,
        speed=speed_curves(arms, options.scalings, options.loss_thresholds, epochs),
        power=study_power,
        claims=claim_rows,
        verdict=verdict(arms, claim_rows, baselines.majority.mean, study_power, primary_id),
        versions=library_versions(),
    )


def _baselines(dataset: Dataset, slots: Sequence[Slot], scalings: Sequence[Scaling]) -> Baselines:
    first = [s for s in slots if s.scaling == scalings[0]]
    majority = [majority_baseline(*labels(dataset, s)).majority_accuracy for s in first]
    logistic = {sc: stat([logistic_accuracy(dataset, s) for s in slots if s.scaling == sc]) for sc in scalings}
    return Baselines(majority=stat(majority), logistic=logistic)


def _sweep(
    dataset: Dataset, slots: Sequence[Slot], config: TrainConfig, options: StudyOptions, timings: dict[str, float]
) -> list[SweepCell]:
    start = time.perf_counter()
    cells = []
    for optimizer, rates in SWEEP_GRID:
        for lr in rates:
            cell_config = replace(config, optimizer=optimizer, learning_rate=lr)
            runs = train_arms(dataset, slots, cell_config, main_epoch=config.epochs, label=f"{optimizer} {lr:g}",
                              progress=options.progress)  # fmt: skip
            cells += [_sweep_cell(r, optimizer, lr, config.epochs) for r in runs.values()]
    timings["sweep"] = time.perf_counter() - start
    return cells


def _regularization(
    dataset: Dataset,
    slots: Sequence[Slot],
    config: TrainConfig,
    options: StudyOptions,
    plain_runs: dict[str, ArmRuns],
    ratio: float,
    timings: dict[str, float],
) -> list[RegularizationCell]:
    start = time.perf_counter()
    settings: dict[Regularization, dict[str, ArmRuns]] = {"none": plain_runs}
    for name, (dropout, weight_decay) in REGULARIZATION.items():
        settings[name] = train_arms(dataset, slots, config, main_epoch=config.epochs, label=name,
                                    progress=options.progress, dropout=dropout, weight_decay=weight_decay)  # fmt: skip
    cells = []
    for name, runs in settings.items():
        for scaling in options.scalings:
            for variant in VARIANTS:
                summary = summarise(runs[arm_name(variant, scaling)], epochs=config.epochs,
                                    loss_thresholds=options.loss_thresholds, ratio=ratio)  # fmt: skip
                cells.append(
                    RegularizationCell(
                        regularization=name,
                        variant=variant,
                        scaling=scaling,
                        accuracy=summary.accuracy,
                        gap_log_loss=summary.gap_log_loss,
                    )
                )
    timings["regularization"] = time.perf_counter() - start
    return cells


def write_study(report: StudyReport, model_dir: Path) -> Path:
    """Write `model_dir/study.json` atomically (a reader sees the old file or the new one, never a part)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / STUDY_FILE
    tmp = model_dir / f".{STUDY_FILE}.tmp-{os.getpid()}-{os.urandom(3).hex()}"
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(report.model_dump_json(indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
