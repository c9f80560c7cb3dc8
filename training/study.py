"""The multi-seed study: the trainer's protocol on seeds 0..N-1 for both variants, trained as one computation.

For seed s (exactly as `training.run.train_run` with `seed=s`): the stratified split with seed s, preprocessing
fitted on that split, initial weights from `build_model(config, s)` and the batch order of a generator seeded
with s, shared by the seed's two variants. All metrics are final-epoch; the best epoch appears only as a
labelled, optimistic measure of how far the curve falls back.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from tqdm import tqdm

from survival.checkpoint import ValidationMetrics
from survival.features import fit_preprocessing, preprocess
from survival.model import VARIANTS, VariantName
from survival.study import STUDY_FILE, StudyData, StudyReport, SweepCell, Timings, VariantSummary
from training.batched import BatchedResult, SeedData, train_batched
from training.data import Dataset, IntArray, stratified_split
from training.loop import OptimizerName, TrainConfig, make_optimizer
from training.metrics import majority_baseline, validation_metrics
from training.run import library_versions
from training.study_stats import paired, stat, verdict

# At least the rates of issue 6; each optimizer's smallest rate is its reference for "higher learning rates".
SWEEP_GRID: Final[tuple[tuple[OptimizerName, tuple[float, ...]], ...]] = (
    ("adam", (1e-3, 1e-2, 5e-2)),
    ("sgd", (0.01, 0.1, 0.5)),
)
STABILITY_EPOCHS: Final[int] = 50


def prepare_seeds(dataset: Dataset, seeds: Sequence[int], config: TrainConfig) -> tuple[SeedData, list[IntArray]]:
    """Every seed's split and preprocessing, stacked; also each seed's validation labels."""
    xs_train, ys_train, xs_val, ys_val, val_labels = [], [], [], [], []
    for seed in seeds:
        train_idx, val_idx = stratified_split(dataset.labels, seed, config.val_fraction)
        prep = fit_preprocessing(dataset.raw[train_idx], standardize=config.standardize)
        xs_train.append(torch.as_tensor(preprocess(dataset.raw[train_idx], prep)))
        xs_val.append(torch.as_tensor(preprocess(dataset.raw[val_idx], prep)))
        ys_train.append(torch.as_tensor(dataset.labels[train_idx]))
        ys_val.append(torch.as_tensor(dataset.labels[val_idx]))
        val_labels.append(dataset.labels[val_idx])
    sizes = {(x.shape[0], v.shape[0]) for x, v in zip(xs_train, xs_val, strict=True)}
    # Stacking needs one shape; a stratified split of one file always gives it, so this only guards the code.
    if len(sizes) != 1:
        raise ValueError(f"the seeds' splits differ in size {sorted(sizes)}; they cannot be trained as one stack")
    data = SeedData(
        seeds=tuple(seeds),
        x_train=torch.stack(xs_train),
        y_train=torch.stack(ys_train),
        x_val=torch.stack(xs_val),
        y_val=torch.stack(ys_val),
    )
    return data, val_labels


def train_stack(data: SeedData, config: TrainConfig, *, label: str, progress: bool) -> BatchedResult:
    """Both variants on every seed, with an optional progress bar on stderr."""
    with tqdm(total=config.epochs, desc=label, unit="epoch", disable=not progress, file=sys.stderr) as bar:

        def on_epoch(_: int) -> None:
            bar.update(1)

        return train_batched(data, VARIANTS, config, on_epoch)


def final_metrics(
    result: BatchedResult, seeds: Sequence[int], val_labels: Sequence[IntArray]
) -> dict[VariantName, list[ValidationMetrics]]:
    """Each model's final-epoch validation metrics, computed by `validation_metrics` as the trainer does."""
    out: dict[VariantName, list[ValidationMetrics]] = {}
    for variant in VARIANTS:
        out[variant] = []
        for i, seed in enumerate(seeds):
            logits = result.val_logits[result.index(variant, seed)]
            if not bool(torch.isfinite(logits).all()):
                raise ValueError(f"{variant}, seed {seed}: training diverged (non-finite outputs)")
            probs = torch.sigmoid(logits).to(torch.float64).numpy()
            out[variant].append(validation_metrics(val_labels[i], probs))
    return out


def summarise(
    result: BatchedResult, metrics: dict[VariantName, list[ValidationMetrics]], seeds: Sequence[int], window: int
) -> dict[VariantName, VariantSummary]:
    """Per-variant statistics over the seeds."""
    summaries: dict[VariantName, VariantSummary] = {}
    for variant in VARIANTS:
        val_acc = np.stack([result.curves[3, result.index(variant, s)].numpy() for s in seeds])
        best = val_acc.max(axis=1)
        summaries[variant] = VariantSummary(
            accuracy=stat([m.accuracy for m in metrics[variant]]),
            log_loss=stat([m.log_loss for m in metrics[variant]]),
            roc_auc=stat([_auc(m) for m in metrics[variant]]),
            stability_last50=stat(val_acc[:, -window:].std(axis=1, ddof=0).tolist()),
            best_epoch_accuracy=stat(best.tolist()),
            best_minus_final=stat((best - val_acc[:, -1]).tolist()),
        )
    return summaries


def _auc(m: ValidationMetrics) -> float:
    if m.roc_auc is None:
        raise ValueError("a validation split holds a single class, so ROC AUC is undefined")
    return m.roc_auc


def sweep_cells(result: BatchedResult, config: TrainConfig, seeds: Sequence[int]) -> list[SweepCell]:
    """Final accuracy and collapse counts of one optimizer and learning rate, per variant."""
    cells = []
    for variant in VARIANTS:
        rows = [result.index(variant, s) for s in seeds]
        logits = result.val_logits[rows]
        predicted = logits >= 0  # NaN compares False: a diverged run predicts one class, as in the trainer
        collapsed = predicted.all(dim=1) | (~predicted).all(dim=1)
        diverged = ~torch.isfinite(logits).all(dim=1) | ~torch.isfinite(result.curves[0, rows, -1])
        cells.append(
            SweepCell(
                optimizer=config.optimizer,
                learning_rate=config.learning_rate,
                variant=variant,
                accuracy=stat(result.curves[3, rows, -1].tolist()),
                collapsed=int((collapsed | diverged).sum()),
                runs=len(rows),
                diverged=int(diverged.sum()),
            )
        )
    return cells


def run_study(
    dataset: Dataset, seeds: Sequence[int], config: TrainConfig, *, sweep: bool = False, progress: bool = False
) -> StudyReport:
    """Train both variants on every seed (and the sweep, if asked), and describe what was found."""
    # The first optimizer made in a process imports torch._dynamo (seconds on a slow disk): a start-up cost of
    # every training command, not part of the study's time.
    make_optimizer(config.optimizer, [torch.nn.Parameter(torch.zeros(1))], config.learning_rate)
    start, start_cpu = time.perf_counter(), time.process_time()
    data, val_labels = prepare_seeds(dataset, seeds, config)
    result = train_stack(data, config, label="study", progress=progress)
    metrics = final_metrics(result, seeds, val_labels)
    window = min(STABILITY_EPOCHS, config.epochs)
    summaries = summarise(result, metrics, seeds, window)
    timings = Timings(study=time.perf_counter() - start, study_cpu=time.process_time() - start_cpu)
    cells: list[SweepCell] | None = None
    if sweep:
        start, start_cpu = time.perf_counter(), time.process_time()
        cells = []
        for optimizer, rates in SWEEP_GRID:
            for lr in rates:
                cell_config = replace(config, optimizer=optimizer, learning_rate=lr)
                same = (optimizer, lr) == (config.optimizer, config.learning_rate)
                cell = (
                    result if same else train_stack(data, cell_config, label=f"{optimizer} {lr:g}", progress=progress)
                )
                cells += sweep_cells(cell, cell_config, seeds)
        timings = timings.model_copy(
            update={"sweep": time.perf_counter() - start, "sweep_cpu": time.process_time() - start_cpu}
        )
    baseline = [majority_baseline(data.y_train[i].numpy().astype(np.int64), v) for i, v in enumerate(val_labels)]
    bn, plain = metrics["batchnorm"], metrics["plain"]
    report = StudyReport(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data=StudyData(
            file_name=dataset.file_name,
            sha256=dataset.sha256,
            n_rows=dataset.n_rows,
            n_train=int(data.x_train.shape[1]),
            n_val=int(data.x_val.shape[1]),
        ),
        seeds=list(seeds),
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        optimizer=config.optimizer,
        hidden=list(config.hidden),
        device=config.device,
        dtype=str(config.dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
        timings_s=timings,
        variants=summaries,
        paired=[
            paired("accuracy", [m.accuracy for m in bn], [m.accuracy for m in plain], higher_is_better=True),
            paired("log_loss", [m.log_loss for m in bn], [m.log_loss for m in plain], higher_is_better=False),
            paired("roc_auc", [_auc(m) for m in bn], [_auc(m) for m in plain], higher_is_better=True),
        ],
        paired_stability=paired(
            "stability_last50",
            summaries["batchnorm"].stability_last50.values,
            summaries["plain"].stability_last50.values,
            higher_is_better=False,
        ),
        stability_window=window,
        baseline_accuracy=stat([b.majority_accuracy for b in baseline]),
        sweep=cells,
        verdict="",
        versions=library_versions(),
    )
    return report.model_copy(update={"verdict": verdict(report)})


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


def table(report: StudyReport) -> str:
    """The study's numbers as a plain-text table (mean ± std over seeds; paired BN minus plain with its CI)."""
    d = report.data
    lines = [
        f"study: {len(report.seeds)} seeds x 2 variants x {report.epochs} epochs, {report.optimizer} lr "
        f"{report.learning_rate:g}, on {d.file_name} (sha256 {d.sha256[:12]}), {d.n_train} train / {d.n_val} "
        f"validation rows per seed",
        f"{'final-epoch validation':<24} {'batchnorm':>15} {'plain':>15}   {'BN - plain [95 % CI]':<27} "
        "ahead/tied/behind",
    ]
    pairs: dict[str, Any] = {p.metric: p for p in report.paired}
    if report.paired_stability is not None:
        pairs["stability_last50"] = report.paired_stability
    for key in ("accuracy", "log_loss", "roc_auc", "stability_last50", "best_epoch_accuracy", "best_minus_final"):
        cells = [getattr(report.variants[v], key) for v in ("batchnorm", "plain")]
        name = key + ("*" if key.startswith("best") else "")
        row = f"{name:<24} " + " ".join(f"{c.mean:>7.3f} ± {c.std:.3f}" for c in cells)
        p = pairs.get(key)
        if p is not None:
            row += f"   {p.mean_diff:+.3f} [{p.ci95[0]:+.3f}, {p.ci95[1]:+.3f}]     {p.ahead}/{p.tied}/{p.behind}"
        lines.append(row)
    if report.baseline_accuracy is not None:
        lines.append(
            f"{'majority class':<24} {report.baseline_accuracy.mean:>7.3f} ± {report.baseline_accuracy.std:.3f}"
        )
    lines.append("* optimistic: the best epoch is picked on the validation set itself; not a result")
    if report.sweep:
        lines.append(
            f"{'sweep':<16} {'batchnorm accuracy':>19} {'collapsed':>9}   {'plain accuracy':>15} {'collapsed':>9}"
        )
        by_key = {(c.optimizer, c.learning_rate, c.variant): c for c in report.sweep}
        for optimizer, lr in dict.fromkeys((c.optimizer, c.learning_rate) for c in report.sweep):
            bn, plain = by_key[(optimizer, lr, "batchnorm")], by_key[(optimizer, lr, "plain")]
            lines.append(
                f"{optimizer + ' ' + format(lr, 'g'):<16} {bn.accuracy.mean:>11.3f} ± {bn.accuracy.std:.3f} "
                f"{bn.collapsed:>5}/{bn.runs:<3}   {plain.accuracy.mean:>7.3f} ± {plain.accuracy.std:.3f} "
                f"{plain.collapsed:>5}/{plain.runs:<3}"
            )
    t = report.timings_s
    sweep = f", sweep {t.sweep:.1f} s (CPU {t.sweep_cpu or 0:.1f} s)" if t.sweep is not None else ""
    lines.append(
        f"time: study {t.study:.1f} s (CPU {t.study_cpu or 0:.1f} s){sweep} on {report.device}, "
        f"{report.threads} thread(s)"
    )
    return "\n".join(lines)
