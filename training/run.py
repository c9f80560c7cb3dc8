"""One training run: split once, fit preprocessing once, train both variants identically, describe them."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import safetensors
import sklearn
import torch
from tqdm import tqdm

from survival.checkpoint import Baseline, Curves, DataInfo, Hyperparameters, ValidationMetrics
from survival.features import Preprocessing, fit_preprocessing, preprocess
from survival.model import VARIANTS, SurvivalNet, VariantName
from survival.runs import VariantPayload
from training.data import Dataset, stratified_split
from training.fold import variant_payload
from training.loop import TrainConfig, train_variant
from training.metrics import majority_baseline, validation_metrics


@dataclass(frozen=True)
class TrainedVariant:
    """A trained model with its curves and final validation metrics."""

    model: SurvivalNet
    curves: Curves
    metrics: ValidationMetrics


@dataclass(frozen=True)
class RunResult:
    """Both variants of a run plus what they share."""

    run_id: str
    created_at: str
    config: TrainConfig
    preprocessing: Preprocessing
    data: DataInfo
    baseline: Baseline
    variants: dict[VariantName, TrainedVariant]

    def checkpoint_payload(
        self, artifacts: dict[VariantName, dict[str, bytes]] | None = None
    ) -> dict[VariantName, VariantPayload]:
        """Weights, served form, metadata and extra `artifacts` per variant, as `survival.runs.save_run` takes them."""
        hyper = Hyperparameters(
            epochs=self.config.epochs,
            learning_rate=self.config.learning_rate,
            batch_size=self.config.batch_size,
            optimizer=self.config.optimizer,
            val_fraction=self.config.val_fraction,
            threads=torch.get_num_threads(),
            device=self.config.device,
            dtype=str(self.config.dtype).removeprefix("torch."),
        )
        payload: dict[VariantName, VariantPayload] = {}
        for name, trained in self.variants.items():
            meta = {
                "variant": name,
                "run_id": self.run_id,
                "created_at": self.created_at,
                "model": trained.model.config,
                "preprocessing": self.preprocessing,
                "hyperparameters": hyper,
                "seed": self.config.seed,
                "data": self.data,
                "curves": trained.curves,
                "metrics": trained.metrics,
                "baseline": self.baseline,
                "versions": library_versions(),
            }
            payload[name] = variant_payload(trained.model, meta, (artifacts or {}).get(name))
        return payload


def library_versions() -> dict[str, str]:
    """Versions that decide the numbers, recorded next to them."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "safetensors": safetensors.__version__,
    }


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id: UTC time plus random bits."""
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(3).hex()


def resolve_device(device: str) -> str:
    """Map 'auto' to cuda when a GPU is visible, else cpu; refuse cuda without one."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available to torch on this machine")
    return device


def to_tensors(
    raw: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs and float labels on the run's device and dtype."""
    x = torch.as_tensor(raw, dtype=config.dtype, device=config.device)
    y = torch.as_tensor(labels, dtype=config.dtype, device=config.device)
    return x, y


def train_run(dataset: Dataset, config: TrainConfig, *, progress: bool = False) -> RunResult:
    """Train both variants on one seeded split with the same preprocessing, init and batch order."""
    now = datetime.now(UTC)
    train_idx, val_idx = stratified_split(dataset.labels, config.seed, config.val_fraction)
    prep = fit_preprocessing(dataset.raw[train_idx], standardize=config.standardize)
    x_train, y_train = to_tensors(preprocess(dataset.raw[train_idx], prep), dataset.labels[train_idx], config)
    x_val, y_val = to_tensors(preprocess(dataset.raw[val_idx], prep), dataset.labels[val_idx], config)
    variants: dict[VariantName, TrainedVariant] = {}
    for name in VARIANTS:
        bar = tqdm(total=config.epochs, desc=f"{name:>9}", unit="epoch", disable=not progress, file=sys.stderr)

        def on_epoch(epoch: int, stats: dict[str, float], bar: tqdm[Any] = bar) -> None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
            bar.update(1)

        model, curves = train_variant(name, x_train, y_train, x_val, y_val, config, on_epoch)
        bar.close()
        with torch.no_grad():
            probs = torch.sigmoid(model(x_val)).to("cpu", torch.float64).numpy()
        metrics = validation_metrics(dataset.labels[val_idx], probs)
        variants[name] = TrainedVariant(model=model, curves=curves, metrics=metrics)
    data = DataInfo(
        file_name=dataset.file_name,
        sha256=dataset.sha256,
        n_rows=dataset.n_rows,
        n_train=int(train_idx.size),
        n_val=int(val_idx.size),
        train_positive_rate=float(dataset.labels[train_idx].mean()),
    )
    return RunResult(
        run_id=new_run_id(now),
        created_at=now.isoformat(timespec="seconds"),
        config=config,
        preprocessing=prep,
        data=data,
        baseline=majority_baseline(dataset.labels[train_idx], dataset.labels[val_idx]),
        variants=variants,
    )
