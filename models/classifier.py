"""DirectionClassifier: a backbone, a one-logit head, a classification loss, the binary metrics, AdamW.

Logits are cast to float32 before the loss, the metrics and the probabilities, so mixed precision
(`bf16-mixed`, `16-mixed`) changes the network's arithmetic only. A training step adds nothing to the GPU's
queue beyond the network and waits for nothing: its loss is kept on the device (`EpochLosses`) and read at
the epoch's boundaries, where `train/loss` (the epoch's mean weighted by batch size) is logged once and a
non-finite loss raises `NonFiniteLossError`: before each validation, at the end of each training epoch and
of training. (A `self.log` in every step costs about as much Python time as a small network's whole step:
`python -m bench.accelerator --batches 2` shows the Lightning path against a bare loop where steps are cheap.)
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


# which parameters `configure_optimizers` decays (logged as the param `optimizer.weight_decay_applies_to`)
DECAYED = "parameters with >= 2 dimensions (weight matrices; not biases or norm weights)"


class EpochLosses:
    """The training losses of one epoch on their device: `add` keeps a reference (no kernel, no host
    sync); `check` reads those added since the last check (one sync) and raises `NonFiniteLossError` at the
    first non-finite one; `mean` is the epoch's mean weighted by batch size, a tensor on the device."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._losses: list[torch.Tensor] = []
        self._where: list[tuple[int, int, int]] = []  # (global step, batch index, batch size)
        self._sum: torch.Tensor | float = 0.0  # of the checked losses, times their batch sizes
        self._count = 0

    def add(self, loss: torch.Tensor, step: int, batch: int, size: int) -> None:
        self._losses.append(loss.detach())
        self._where.append((step, batch, size))

    def _pending(self) -> tuple[torch.Tensor, torch.Tensor]:
        losses = torch.stack(self._losses).float()
        return losses, losses.new_tensor([size for _, _, size in self._where])

    def check(self) -> None:
        if not self._losses:
            return
        losses, sizes = self._pending()
        bad = ~torch.isfinite(losses)
        if bad.any():
            k = int(bad.nonzero()[0])
            step, batch, _ = self._where[k]
            value = losses[k].item()
            self.clear()
            raise NonFiniteLossError(
                f"non-finite training loss {value} at global step {step} (batch {batch}); "
                "check the inputs for NaN/inf and lower the learning rate"
            )
        self._sum = self._sum + (losses * sizes).sum()
        self._count += sum(size for _, _, size in self._where)
        self._losses, self._where = [], []

    def mean(self) -> torch.Tensor:
        """On the losses' device; nothing waits for it."""
        total, count = self._sum, self._count
        if self._losses:
            losses, sizes = self._pending()
            total, count = total + (losses * sizes).sum(), count + sum(size for _, _, size in self._where)
        return total / count


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
        self.train_losses = EpochLosses()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x).float(), y.reshape(-1))
        self.train_losses.add(loss, self.global_step, batch_idx, len(y))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """After the epoch's last training batch (its optimizer step done), before validation: `train/loss`."""
        if self._ended_epoch(batch_idx):
            self.log("train/loss", self.train_losses.mean(), on_step=False, on_epoch=True, batch_size=1)

    def _ended_epoch(self, batch_idx: int) -> bool:
        """Whether the batch just trained was the epoch's last, as Lightning counts: the last of the loader or
        of `limit_train_batches`, or the one whose optimizer step reached `max_steps` (optimizer steps, of
        `accumulate_grad_batches` batches each)."""
        trainer = self.trainer
        return (batch_idx + 1 >= trainer.num_training_batches
                or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
                or 0 <= trainer.max_steps <= trainer.global_step)

    def check_finite_loss(self) -> None:
        """Raise `NonFiniteLossError` if a training loss of this epoch was NaN or infinite."""
        self.train_losses.check()

    def on_train_epoch_start(self):
        self.train_losses.clear()

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
        """AdamW; weight decay on the weight matrices only (`DECAYED`), not on biases or norm weights."""
        decayed = [p for p in self.parameters() if p.ndim >= 2]
        others = [p for p in self.parameters() if p.ndim < 2]
        groups = [{"params": decayed, "weight_decay": self.hparams.weight_decay},
                  {"params": others, "weight_decay": 0.0}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.hparams.lr)


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
