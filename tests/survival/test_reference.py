"""The monitoring reference the trainer writes: features of the training split, exact hidden-layer statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from support.paths import SHIPPED_CSV_PATH
from torch import nn

from survival.features import preprocess
from survival.reference import SAMPLE_MAX, numeric_reference
from training.data import load_csv, stratified_split
from training.loop import TrainConfig
from training.reference import variant_reference
from training.run import RunResult, train_run


@pytest.fixture(scope="module")
def run() -> RunResult:
    """A real, short training run of both variants."""
    return train_run(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=4))


def training_rows(seed: int = 0) -> pd.DataFrame:
    """The training split's rows of the shipped CSV, read with pandas (not the trainer's loader)."""
    frame = pd.read_csv(SHIPPED_CSV_PATH)
    train_idx, _ = stratified_split(frame["Survived"].to_numpy(), seed)
    return frame.iloc[train_idx]


def test_feature_reference_describes_the_training_split(run: RunResult) -> None:
    frame = training_rows()
    for trained in run.variants.values():
        ref = trained.reference.features
        assert ref.n_rows == len(frame) == run.data.n_train
        assert ref.pclass_counts == {str(k): int(v) for k, v in frame["Pclass"].value_counts().items()}
        assert ref.fare.values == sorted(frame["Fare"].tolist())
        assert ref.age.values == sorted(frame["Age"].dropna().tolist())
        assert ref.age.n_missing == int(frame["Age"].isna().sum()) > 0
        assert not ref.fare.quantiles


def test_numeric_reference_of_a_large_split_is_bounded_quantiles() -> None:
    column = np.random.default_rng(0).exponential(30.0, SAMPLE_MAX * 3)
    column[:5] = np.nan
    ref = numeric_reference(column)
    assert ref.quantiles
    assert len(ref.values) == SAMPLE_MAX
    assert ref.n_known == SAMPLE_MAX * 3 - 5
    assert ref.n_missing == 5
    assert ref.values[0] >= np.nanmin(column)
    assert ref.values[-1] <= np.nanmax(column)


def test_layer_reference_is_the_exact_eval_mode_statistics_of_each_hidden_layer(run: RunResult) -> None:
    """Captured independently with forward hooks: BatchNorm's input (and output), or ReLU's input without BN."""
    dataset = load_csv(SHIPPED_CSV_PATH)
    train_idx, _ = stratified_split(dataset.labels, 0)
    x = torch.as_tensor(preprocess(dataset.raw[train_idx], run.preprocessing), dtype=torch.float64)
    for name, trained in run.variants.items():
        model = trained.model.double().eval()  # a copy would do; the fixture's model is not reused after this
        hooked = nn.BatchNorm1d if name == "batchnorm" else nn.ReLU
        seen: list[tuple[np.ndarray, np.ndarray]] = []
        handles = [
            m.register_forward_hook(lambda _m, i, o, seen=seen: seen.append((i[0].numpy().copy(), o.numpy().copy())))
            for m in model.net
            if isinstance(m, hooked)
        ]
        with torch.no_grad():
            model(x)
        for handle in handles:
            handle.remove()
        layers = trained.reference.layers
        assert [layer.name for layer in layers] == ["hidden1", "hidden2"]
        assert len(seen) == len(layers)
        for layer, (inputs, outputs) in zip(layers, seen, strict=True):
            np.testing.assert_allclose(layer.mean, inputs.mean(axis=0), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(layer.var, inputs.var(axis=0), rtol=1e-9, atol=1e-9)
            # scale/shift reproduce the eval-mode BatchNorm (identity without BN) unit by unit.
            mapped = np.asarray(layer.scale) * inputs + np.asarray(layer.shift)
            np.testing.assert_allclose(mapped, outputs if name == "batchnorm" else inputs, rtol=1e-9, atol=1e-9)
        if name == "batchnorm":
            bn = next(m for m in model.net if isinstance(m, nn.BatchNorm1d))
            assert bn.running_mean is not None
            # PreciseBN, not the running averages (which lag behind the final weights).
            assert not np.allclose(layers[0].mean, bn.running_mean.numpy(), rtol=1e-6)


def test_variant_reference_uses_the_final_weights_in_eval_mode(run: RunResult) -> None:
    """A model left in training mode gives the same reference: the computation switches to eval itself."""
    dataset = load_csv(SHIPPED_CSV_PATH)
    train_idx, _ = stratified_split(dataset.labels, 0)
    raw = dataset.raw[train_idx]
    trained = run.variants["batchnorm"]
    model = trained.model.float().train()
    try:
        assert variant_reference(model, raw, run.preprocessing) == variant_reference(
            model.eval(), raw, run.preprocessing
        )
    finally:
        model.eval()
