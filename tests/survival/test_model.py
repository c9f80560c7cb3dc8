"""The model definition: identical init for both variants, and BN that uses its running statistics at inference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from survival.model import VARIANTS, ModelConfig, SurvivalNet, build_model
from survival.torch_checkpoint import load_pair


def linear_weights(model: SurvivalNet) -> list[torch.Tensor]:
    """The Linear layers' weights and biases, in order."""
    return [p.detach().clone() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters()]


def test_model_variants_share_initial_linear_weights() -> None:
    bn = build_model(ModelConfig.for_variant("batchnorm"), seed=7)
    plain = build_model(ModelConfig.for_variant("plain"), seed=7)
    for a, b in zip(linear_weights(bn), linear_weights(plain), strict=True):
        assert torch.equal(a, b)
    other = build_model(ModelConfig.for_variant("plain"), seed=8)
    assert not torch.equal(linear_weights(plain)[0], linear_weights(other)[0])


def test_model_architecture_places_bn_between_linear_and_relu() -> None:
    layers = [type(m).__name__ for m in SurvivalNet(ModelConfig(batchnorm=True, hidden=(16, 8))).net]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    layers = [type(m).__name__ for m in SurvivalNet(ModelConfig(batchnorm=False, hidden=(16, 8))).net]
    assert layers == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


@pytest.fixture(scope="module")
def trained_bn(model_dir: Path) -> SurvivalNet:
    """The batchnorm model of the session checkpoints, in eval() mode with non-trivial running statistics."""
    model = load_pair(model_dir)["batchnorm"].model
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert bn.running_mean is not None
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    return model


def running_stats(model: SurvivalNet) -> list[torch.Tensor]:
    """Every BN layer's running mean and variance."""
    return [b.clone() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))]


def test_bn_eval_prediction_alone_equals_prediction_in_batch(trained_bn: SurvivalNet) -> None:
    gen = torch.Generator().manual_seed(0)
    batch = torch.stack(
        [
            torch.randint(1, 4, (256,), generator=gen).float(),
            torch.rand(256, generator=gen) * 300,
            torch.rand(256, generator=gen) * 79 + 1,
        ],
        dim=1,
    )
    before = running_stats(trained_bn)
    with torch.inference_mode():
        together = torch.sigmoid(trained_bn(batch))
        alone = torch.cat([torch.sigmoid(trained_bn(batch[i : i + 1])) for i in range(batch.shape[0])])
    assert alone.shape == (256,)
    assert (alone - together).abs().max().item() <= 1e-5
    for a, b in zip(before, running_stats(trained_bn), strict=True):
        assert torch.equal(a, b)


def test_bn_train_mode_would_depend_on_the_batch(trained_bn: SurvivalNet) -> None:
    # The contrast that makes the test above meaningful: in train() mode BN normalises with the
    # batch's own statistics, so the same passenger gets another output in another batch.
    model = SurvivalNet(trained_bn.config)
    model.load_state_dict(trained_bn.state_dict())
    model.train()
    x = torch.tensor([[3.0, 7.25, 22.0], [1.0, 80.0, 40.0], [2.0, 13.0, 30.0]])
    with torch.no_grad():
        a = model(x[:2])[0]
        b = model(x[[0, 2]])[0]
    assert abs(a.item() - b.item()) > 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_accepts_a_batch_of_one_in_eval(model_dir: Path, variant: str) -> None:
    model = load_pair(model_dir)[variant].model  # type: ignore[index]
    with torch.inference_mode():
        out = model(torch.tensor([[3.0, 7.25, 22.0]]))
    assert out.shape == (1,)
    assert torch.isfinite(out).all()
