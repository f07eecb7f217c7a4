"""Losses on logits: focal (Lin et al. 2017) and plain BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from conventions.errors import UserError


class NonFiniteLossError(UserError):
    """A training loss became NaN or infinite: settings (learning rate, inputs) the user can change."""


class FocalLoss(nn.Module):
    """FL = -alpha*y*(1-p)^gamma*log(p) - (1-alpha)*(1-y)*p^gamma*log(1-p), mean over samples, p = sigmoid(logit).

    The log terms are BCE-with-logits against 1 and 0, and the modulating factors are exp(gamma*logsigmoid(.)),
    so large logits neither overflow nor give NaN gradients.
    """

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25):
        super().__init__()
        if gamma < 0 or not 0.0 <= alpha <= 1.0:
            raise UserError(f"focal loss needs gamma >= 0 and 0 <= alpha <= 1, got gamma={gamma}, alpha={alpha}")
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype).reshape(logits.shape)
        neg_log_p = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
        neg_log_1mp = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
        weight_pos = torch.exp(self.gamma * F.logsigmoid(-logits))  # (1 - p)^gamma
        weight_neg = torch.exp(self.gamma * F.logsigmoid(logits))  # p^gamma
        loss = (self.alpha * target * weight_pos * neg_log_p
                + (1 - self.alpha) * (1 - target) * weight_neg * neg_log_1mp)
        return loss.mean()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"


class BCEWithLogits(nn.BCEWithLogitsLoss):
    """BCEWithLogitsLoss that accepts integer or [B, 1] targets like FocalLoss does."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, target.to(logits.dtype).reshape(logits.shape))


def make_loss(loss: str, focal_gamma: float = 2.0, focal_alpha: float = 0.25) -> nn.Module:
    if loss == "focal":
        return FocalLoss(focal_gamma, focal_alpha)
    if loss == "bce":
        return BCEWithLogits()
    raise UserError(f"unknown loss {loss!r}; known: bce, focal")
