"""Focal loss against its formula; BCE; loss factory."""

import math

import pytest
import torch
import torch.nn.functional as F

from conventions.errors import UserError
from models.losses import FocalLoss, make_loss


def _focal(z, y, gamma, alpha):
    p = 1 / (1 + math.exp(-z))
    return -alpha * y * (1 - p) ** gamma * math.log(p) - (1 - alpha) * (1 - y) * p**gamma * math.log(1 - p)


def test_focal_equals_formula_on_hand_values():
    z, y = [0.0, 2.0, -1.0, 0.5], [1, 0, 1, 0]
    expected = sum(_focal(a, b, 2.0, 0.25) for a, b in zip(z, y, strict=True)) / 4
    got = FocalLoss(2.0, 0.25)(torch.tensor(z, dtype=torch.float64), torch.tensor(y))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert got.item() == pytest.approx(0.25 * 0.25 * math.log(2) / 4 + 0.75 * 0.8808**2 * 2.1269 / 4
                                       + 0.25 * 0.7311**2 * 1.3133 / 4 + 0.75 * 0.6225**2 * 0.9741 / 4, rel=1e-3)


def test_gamma_zero_alpha_half_is_half_bce():
    z = torch.randn(64, dtype=torch.float64) * 5
    y = torch.randint(0, 2, (64,))
    bce = F.binary_cross_entropy_with_logits(z, y.double())
    assert torch.equal(FocalLoss(0.0, 0.5)(z, y), bce / 2)


def test_focal_is_finite_for_extreme_logits():
    z = torch.tensor([-200.0, 200.0, 90.0, -90.0], requires_grad=True)
    loss = FocalLoss(0.5, 0.25)(z, torch.tensor([1, 0, 1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_make_loss():
    assert isinstance(make_loss("focal", 1.0, 0.5), FocalLoss)
    bce = make_loss("bce")
    z = torch.tensor([[0.3], [-1.2]])
    expected = F.binary_cross_entropy_with_logits(z.flatten(), torch.tensor([1.0, 0.0]))
    assert torch.allclose(bce(z, torch.tensor([1, 0])), expected)
    with pytest.raises(UserError, match="unknown loss 'mse'"):
        make_loss("mse")
    with pytest.raises(UserError, match="gamma >= 0"):
        make_loss("focal", -1.0, 0.25)
