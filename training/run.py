"""One training run: split once, fit preprocessing once, train both variants identically, describe them."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import safetensors
import sklearn
import torch
from tqdm import tqdm

from survival.checkpoint import Baseline, Curves, DataInfo, Hyperparameters, ValidationMetrics
from survival.features import Preprocessing, fit_preprocessing, preprocess
from survival.model import VARIANTS, SurvivalNet, VariantName
from survival.reference import REFERENCE_FILE, Reference
from survival.runs import VariantPayload
from training.batched import SeedData, train_batched
from training.data import Dataset, IntArray, stratified_split
from training.fold import variant_payload
from training.loop import TrainConfig
from training.metrics import majority_baseline, validation_metrics
from training.reference import variant_reference


@dataclass(frozen=True)
class TrainedVariant:
    """A trained model with its curves, final validation metrics and monitoring reference."""

    model: SurvivalNet
    curves: Curves
    metrics: ValidationMetrics
    reference: Reference


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
            # The monitoring reference travels in the same atomic write as the weights.
            extra = {REFERENCE_FILE: trained.reference.model_dump_json().encode(), **(artifacts or {}).get(name, {})}
            payload[name] = variant_payload(trained.model, meta, extra)
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


@dataclass(frozen=True)
class PreparedSplit:
    """One seed's stratified split and the preprocessing fitted on its training part: what a run trains on."""

    train_idx: IntArray
    val_idx: IntArray
    preprocessing: Preprocessing
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def prepare_split(dataset: Dataset, seed: int, config: TrainConfig) -> PreparedSplit:
    """The trainer's seeded stratified split, prepared by `prepare_indices` (`train_run` and the study call it)."""
    train_idx, val_idx = stratified_split(dataset.labels, seed, config.val_fraction)
    return prepare_indices(dataset, train_idx, val_idx, config)


def prepare_indices(dataset: Dataset, train_idx: IntArray, val_idx: IntArray, config: TrainConfig) -> PreparedSplit:
    """Preprocessing fitted on the training rows only, and both parts as tensors of `config.dtype`.

    The one place a split is turned into model inputs: every run of the trainer and of the study goes through it.
    """
    prep = fit_preprocessing(dataset.raw[train_idx], standardize=config.standardize)

    def tensors(idx: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(preprocess(dataset.raw[idx], prep), dtype=config.dtype)
        return x, torch.as_tensor(dataset.labels[idx], dtype=config.dtype)

    (x_train, y_train), (x_val, y_val) = tensors(train_idx), tensors(val_idx)
    return PreparedSplit(train_idx, val_idx, prep, x_train, y_train, x_val, y_val)


def train_run(dataset: Dataset, config: TrainConfig, *, progress: bool = False) -> RunResult:
    """Train both variants on one seeded split with the same preprocessing, init and batch order.

    The two variants train as one stack (`training.batched`): the same models `training.loop.train_variant`
    trains, in a third of the time, because each step's cost at this size is dispatch, not arithmetic.
    """
    now = datetime.now(UTC)
    split = prepare_split(dataset, config.seed, config)
    data = SeedData(
        seeds=(config.seed,),
        x_train=split.x_train.unsqueeze(0),
        y_train=split.y_train.unsqueeze(0),
        x_val=split.x_val.unsqueeze(0),
        y_val=split.y_val.unsqueeze(0),
    )
    with tqdm(total=config.epochs, desc="both variants", unit="epoch", disable=not progress, file=sys.stderr) as bar:
        result = train_batched(data, VARIANTS, config, lambda _: bar.update(1))
    val_labels = dataset.labels[split.val_idx]
    variants: dict[VariantName, TrainedVariant] = {}
    for name in VARIANTS:
        m = result.index(name, 0)
        model = result.net.to_module(m)
        # The metrics of the module that is saved (not of the stack's logits, which can differ in the last
        # float32 bit), so `python -m training evaluate` on the validation rows reproduces them exactly.
        with torch.no_grad():
            probs = torch.sigmoid(model(split.x_val)).to(torch.float64).numpy()
        variants[name] = TrainedVariant(
            model=model,
            curves=result.model_curves(m),
            metrics=validation_metrics(val_labels, probs),
            reference=variant_reference(model, dataset.raw[split.train_idx], split.preprocessing),
        )
    train_labels = dataset.labels[split.train_idx]
    data_info = DataInfo(
        file_name=dataset.file_name,
        sha256=dataset.sha256,
        n_rows=dataset.n_rows,
        n_train=int(split.train_idx.size),
        n_val=int(split.val_idx.size),
        train_positive_rate=float(train_labels.mean()),
    )
    return RunResult(
        run_id=new_run_id(now),
        created_at=now.isoformat(timespec="seconds"),
        config=config,
        preprocessing=split.preprocessing,
        data=data_info,
        baseline=majority_baseline(train_labels, val_labels),
        variants=variants,
    )
