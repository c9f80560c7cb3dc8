"""Santurkar et al.'s internal covariate shift: measured without changing training, and equal to the definition
recomputed with autograd on a torch SurvivalNet and torch.optim.Adam."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from survival.model import VARIANTS, ModelConfig, VariantName, build_model
from training.batched import train_batched
from training.data import Dataset
from training.loop import TrainConfig, batch_order, make_optimizer
from training.study_data import make_slots, stacks
from training.study_ics import ShiftProbe, layer_name, train_measuring

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_layers_are_named_for_what_they_are() -> None:
    assert [layer_name(i, 3) for i in range(3)] == ["hidden layer 1", "hidden layer 2", "output layer"]


def test_measuring_ics_leaves_training_exactly_as_the_study_trains(dataset: Dataset) -> None:
    config = TrainConfig(epochs=11, dtype=torch.float64)
    (_, data), *_ = stacks(make_slots(dataset, (0, 1), None, ("raw", "standardized"), config))
    reference = train_batched(data, VARIANTS, config)
    net, _, meter = train_measuring(data, config, ShiftProbe())
    assert torch.equal(net.params, reference.net.params)
    assert meter.steps == 2  # the first step of epochs 0 and 10


def _autograd_ics(
    variant: VariantName, x: torch.Tensor, y: torch.Tensor, config: TrainConfig
) -> list[tuple[float, float]]:
    """Definition 2.1 of Santurkar et al. on a torch SurvivalNet: per Linear layer i >= 1, ||G - G'|| and cos."""
    model = build_model(ModelConfig.for_variant(variant, hidden=config.hidden, n_features=3), 0).double().train()
    before = copy.deepcopy(model)
    loss_fn = nn.BCEWithLogitsLoss()

    def weight_grads(m: nn.Module) -> list[torch.Tensor]:
        m.zero_grad()
        loss_fn(m(x).squeeze(-1), y).backward()
        return [lin.weight.grad.clone() for lin in m.net if isinstance(lin, nn.Linear)]  # type: ignore[union-attr]

    grads = weight_grads(model)
    optimizer = make_optimizer(config.optimizer, list(model.parameters()), config.learning_rate)
    optimizer.step()
    after = list(model.net)
    out = []
    linear_at = [k for k, mod in enumerate(after) if isinstance(mod, nn.Linear)]
    for i in range(1, len(linear_at)):
        mixed = copy.deepcopy(before)
        with torch.no_grad():
            # Every module below Linear layer i (its Linear, BatchNorm) takes the update; the rest keeps w_t.
            for k in range(linear_at[i]):
                for p_mixed, p_after in zip(mixed.net[k].parameters(), after[k].parameters(), strict=True):
                    p_mixed.copy_(p_after)
        g, g2 = grads[i], weight_grads(mixed)[i]
        out.append((float((g2 - g).norm()), float((g * g2).sum() / (g.norm() * g2.norm()))))
    return out


@pytest.mark.parametrize("variant", ["batchnorm", "plain"])
def test_ics_is_santurkars_definition_recomputed_with_autograd(dataset: Dataset, variant: VariantName) -> None:
    config = TrainConfig(epochs=1, dtype=torch.float64)
    slots = make_slots(dataset, (0,), None, ("raw",), config)
    (_, data), *_ = stacks(slots)
    net, keys, meter = train_measuring(data, config, ShiftProbe())
    assert meter.steps == 1
    # The first batch of epoch 0 for seed 0, as the trainer draws it.
    first = batch_order(data.x_train.shape[1], config.batch_size, torch.Generator().manual_seed(0))[0]
    x, y = data.x_train[0, first].double(), data.y_train[0, first].double()
    expected = _autograd_ics(variant, x, y, config)
    m = keys.index((variant, 0))
    measured = [(float(meter.l2[i, m]), float(meter.cosine[i, m])) for i in range(2)]
    for (l2, cosine), (l2_expected, cosine_expected) in zip(measured, expected, strict=True):
        assert l2 == pytest.approx(l2_expected, rel=1e-6)
        assert cosine == pytest.approx(cosine_expected, rel=1e-9)
    assert all(l2 > 0 for l2, _ in measured)
    assert net.params.dtype == torch.float64
