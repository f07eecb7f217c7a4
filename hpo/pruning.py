"""Lightning callback reporting val AUROC to the Optuna trial each epoch and pruning it when told to."""

from __future__ import annotations

import optuna
import pytorch_lightning as pl

from training.train import MONITOR


class PruningCallback(pl.Callback):
    """Reports after validation; raises `optuna.TrialPruned` at the end of the epoch, so that the epoch's
    metrics are logged first (train's EpochLogger runs before callbacks passed to `train`). With
    `prune=False` (forced configs) it only reports."""

    def __init__(self, trial: optuna.Trial, prune: bool = True):
        self.trial, self.prune = trial, prune
        self.pruned_at: tuple[int, float] | None = None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(MONITOR)
        if trainer.sanity_checking or value is None:
            return
        self.trial.report(float(value), trainer.current_epoch)
        if self.prune and self.trial.should_prune():
            self.pruned_at = (trainer.current_epoch, float(value))

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.pruned_at is not None:
            epoch, value = self.pruned_at
            raise optuna.TrialPruned(f"pruned at epoch {epoch} with {MONITOR} {value:.4f}")
