"""DirectionClassifier: a backbone, a one-logit head, a classification loss, the binary metrics, AdamW.

Logits are cast to float32 before the loss, the metrics and the probabilities, so mixed precision
(`bf16-mixed`, `16-mixed`) changes the network's arithmetic only. A non-finite training loss is recorded
on the device where it happens (no host sync per step) and raised as `NonFiniteLossError` when the
record is read: before each validation, at the end of each training epoch and of training.
"""

from __future__ import annotations

import warnings

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.warnings import PossibleUserWarning
from torch import nn

from models.losses import NonFiniteLossError, make_loss
from models.metrics import binary_metric_collection
from models.registry import build_backbone, resolve_hp

# Importing neuralforecast (models.backbones) runs `filterwarnings("ignore", category=PossibleUserWarning)`
# for the whole process (neuralforecast/core.py). Drop exactly that filter so that Lightning's advice reaches
# users again; the public call after it tells the warnings machinery that the filters changed.
if ("ignore", None, PossibleUserWarning, None, 0) in warnings.filters:
    warnings.filters.remove(("ignore", None, PossibleUserWarning, None, 0))
    warnings.filterwarnings("default", category=PossibleUserWarning, append=True)


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
        # (global step, batch index, value) of the first non-finite training loss, on the loss's device
        self._first_bad: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x).float(), y.reshape(-1))
        self._record_non_finite(loss.detach(), batch_idx)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    # -- non-finite loss: recorded on the device each step, read at epoch boundaries -----------------------

    def _record_non_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Keep the step, batch and value of the first non-finite loss; device ops only, nothing waits."""
        if self._first_bad is None or self._first_bad[0].device != loss.device:
            none = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self._first_bad = (none, none, torch.zeros((), device=loss.device))
        step, batch, value = self._first_bad
        new = (step < 0) & ~torch.isfinite(loss)
        self._first_bad = (torch.where(new, self.global_step, step), torch.where(new, batch_idx, batch),
                           torch.where(new, loss.float(), value))

    def check_finite_loss(self) -> None:
        """Raise `NonFiniteLossError` if a training loss since the start of fit was NaN or infinite (one
        host sync)."""
        if self._first_bad is None:
            return
        step, batch, value = (t.item() for t in self._first_bad)
        if step >= 0:
            self._first_bad = None
            raise NonFiniteLossError(
                f"non-finite training loss {value} at global step {step} (batch {batch}); "
                "check the inputs for NaN/inf and lower the learning rate"
            )

    def on_train_start(self):
        self._first_bad = None

    def on_validation_epoch_start(self):
        self.check_finite_loss()  # before a diverged network is evaluated, checkpointed or early-stopped

    def on_train_epoch_end(self):
        self.check_finite_loss()

    def on_train_end(self):
        self.check_finite_loss()

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", self.test_metrics)

    def _evaluate(self, batch, stage: str, metrics) -> None:
        x, y = batch
        y = y.reshape(-1)
        logits = self(x).float()
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
        return torch.sigmoid(self(x).float())

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
