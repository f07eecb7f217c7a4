"""DirectionClassifier: a backbone, a one-logit head, a classification loss, the binary metrics, AdamW."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from models.losses import NonFiniteLossError, make_loss
from models.metrics import binary_metric_collection
from models.registry import build_backbone, resolve_hp


class DirectionClassifier(pl.LightningModule):
    """[B, L, F] -> one logit per sample; `predict_step` gives P(rise >= threshold within horizon).

    `dropout` is applied before the head; `extra_hparams` are only recorded (save_hyperparameters), e.g. the
    model name and shape so that a checkpoint says what it holds.
    """

    def __init__(
        self, backbone: nn.Module, loss: nn.Module, lr: float = 1e-3, weight_decay: float = 1e-4,
        dropout: float = 0.0, **extra_hparams,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "loss"])
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.out_dim, 1))
        self.loss = loss
        metrics = binary_metric_collection()
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y.reshape(-1))
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss {loss.item()} at global step {self.global_step} (batch {batch_idx}); "
                "check the inputs for NaN/inf and lower the learning rate"
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", self.test_metrics)

    def _evaluate(self, batch, stage: str, metrics) -> None:
        x, y = batch
        y = y.reshape(-1)
        logits = self(x)
        self.log(f"{stage}/loss", self.loss(logits, y), on_step=False, on_epoch=True, batch_size=len(y))
        metrics.update(torch.sigmoid(logits), y.long())

    def on_validation_epoch_end(self):
        self._log_metrics(self.val_metrics)

    def on_test_epoch_end(self):
        self._log_metrics(self.test_metrics)

    def _log_metrics(self, metrics) -> None:
        self.log_dict(metrics.compute())
        metrics.reset()

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return torch.sigmoid(self(x))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def build_classifier(
    name: str, n_features: int, input_size: int, *, loss: str = "focal", focal_gamma: float = 2.0,
    focal_alpha: float = 0.25, lr: float = 1e-3, weight_decay: float = 1e-4, **hp,
) -> DirectionClassifier:
    """The whole network from names: backbone `name` (with `feature_proj`), its `dropout` before the head too.

    Everything needed to rebuild it is recorded in `hparams` (`loss` as `loss_name`).
    """
    hp = resolve_hp(name, **hp)
    return DirectionClassifier(
        build_backbone(name, n_features, input_size, **hp),
        make_loss(loss, focal_gamma, focal_alpha),
        lr=lr,
        weight_decay=weight_decay,
        name=name,
        n_features=n_features,
        input_size=input_size,
        loss_name=loss,
        focal_gamma=focal_gamma,
        focal_alpha=focal_alpha,
        **hp,
    )
