"""The batched engine against the reference loop and against `train_run`, in float64, at 1e-9.

A slip the size of BatchNorm's eps (1e-5) or Adam's eps (1e-8) moves the curves by far more than 1e-9 within a
few epochs; what remains at 1e-9 is the order of floating-point sums (bmm against addmm).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from survival.model import VariantName
from training.batched import CURVE_NAMES, BatchedNet, train_batched
from training.data import Dataset
from training.loop import OptimizerName, TrainConfig, train_variant
from training.run import RunResult, prepare_split, train_run
from training.study_data import make_slots, stacks

TOLERANCE = 1e-9


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assert_same_run(result: RunResult, name: VariantName, curves: object, model: torch.nn.Module, where: str) -> None:
    trained = result.variants[name]
    for key in CURVE_NAMES:
        expected, actual = np.array(getattr(curves, key)), np.array(getattr(trained.curves, key))
        np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE, err_msg=f"{where} {name} {key}")
    mine, theirs = trained.model.state_dict(), model.state_dict()
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(mine[key], value, rtol=0, atol=TOLERANCE, msg=f"{where} {name} {key}")


@pytest.mark.parametrize(
    ("optimizer", "lr", "epochs", "standardize"),
    [("adam", 1e-3, 15, False), ("sgd", 0.1, 6, False), ("adam", 1e-2, 6, True)],
)
def test_train_run_equals_the_reference_loop_in_float64(
    dataset: Dataset, optimizer: OptimizerName, lr: float, epochs: int, standardize: bool
) -> None:
    config = TrainConfig(
        epochs=epochs, optimizer=optimizer, learning_rate=lr, seed=3, standardize=standardize, dtype=torch.float64
    )
    result = train_run(dataset, config)
    # The inputs train_run itself prepares (the one prepare_split), trained by the one-model-at-a-time loop.
    split = prepare_split(dataset, config.seed, config)
    assert result.preprocessing == split.preprocessing
    names: tuple[VariantName, ...] = ("batchnorm", "plain")
    for name in names:
        model, curves = train_variant(name, split.x_train, split.y_train, split.x_val, split.y_val, config)
        _assert_same_run(result, name, curves, model, "train_run vs loop")
        assert not result.variants[name].model.training
        with torch.no_grad():
            probs = torch.sigmoid(model(split.x_val)).numpy()
        assert result.variants[name].metrics.log_loss == pytest.approx(
            float(-np.mean(np.where(split.y_val.numpy() == 1, np.log(probs), np.log(1 - probs)))), abs=1e-9
        )


def test_study_stacks_equal_train_run_in_float64(dataset: Dataset) -> None:
    # Seeds 1 and 4, both scalings, one stack: each model must find its own slot's split, seed and generator.
    config = TrainConfig(epochs=8, dtype=torch.float64)
    slots = make_slots(dataset, (1, 4), None, ("raw", "standardized"), config)
    [(group, data)] = stacks(slots)
    result = train_batched(data, ("plain", "batchnorm"), config)
    names: tuple[VariantName, ...] = ("batchnorm", "plain")
    for i, slot in enumerate(group):
        reference = train_run(dataset, replace(config, seed=slot.seed, standardize=slot.scaling == "standardized"))
        for name in names:
            m = result.index(name, i)
            _assert_same_run(reference, name, result.model_curves(m), result.net.to_module(m), f"slot {i}")
    assert result.model_curves(result.index("plain", 0)) != result.model_curves(result.index("plain", 1))


def test_a_stack_lists_batchnorm_models_first() -> None:
    with pytest.raises(ValueError, match="batchnorm models first"):
        BatchedNet([("plain", 0), ("batchnorm", 0)], (16, 8), 3, torch.float64, "cpu")


def test_per_model_norm_is_each_models_own_parameter_norm() -> None:
    net = BatchedNet([("batchnorm", 0), ("batchnorm", 1), ("plain", 2)], (16, 8), 3, torch.float64, "cpu")
    net.params.copy_(torch.randn(net.params.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    norms = net.per_model_norm(net.params)
    for m in range(3):
        model = net.to_module(m)
        direct = torch.cat([p.detach().flatten() for p in model.parameters()]).norm()
        assert float(norms[m]) == pytest.approx(float(direct), rel=1e-12)


def test_weight_decay_and_dropout_change_the_models_and_zero_changes_nothing(dataset: Dataset) -> None:
    config = TrainConfig(epochs=2, dtype=torch.float64)
    [(_, data)] = stacks(make_slots(dataset, (0, 1), None, ("raw",), config))
    plain = train_batched(data, ("batchnorm", "plain"), config)
    again = train_batched(data, ("batchnorm", "plain"), config, dropout=0.0, weight_decay=0.0)
    assert torch.equal(plain.curves, again.curves)
    for kwargs in ({"dropout": 0.2}, {"weight_decay": 1e-1}):
        other = train_batched(data, ("batchnorm", "plain"), config, **kwargs)  # type: ignore[arg-type]
        assert not torch.equal(other.curves, plain.curves), kwargs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_batched_on_cuda_matches_cpu_in_float64(dataset: Dataset) -> None:
    config = TrainConfig(epochs=5, dtype=torch.float64)
    [(_, data)] = stacks(make_slots(dataset, (0, 1, 4), None, ("raw", "standardized"), config))
    cpu = train_batched(data, ("batchnorm", "plain"), config)
    gpu = train_batched(data, ("batchnorm", "plain"), replace(config, device="cuda"))
    torch.testing.assert_close(gpu.curves, cpu.curves, rtol=0, atol=1e-9)
    torch.testing.assert_close(gpu.val_logits, cpu.val_logits, rtol=0, atol=1e-9)
