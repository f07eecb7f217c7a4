"""Lightning callback reporting val AUROC to the Optuna trial each epoch and pruning it when told to; the
median pruner every study uses.

A walk-forward trial (`data.folds` K > 1) trains its folds one after another; fold k (0-based) reports its
epochs at steps ``k * max_epochs + epoch``, so that each report is compared with the same fold's same epoch of
earlier trials, and a trial can be stopped in any fold, its first included."""

from __future__ import annotations

import optuna
import pytorch_lightning as pl

from training.train import MONITOR


def warmup_epochs(max_epochs: int) -> int:
    """The epochs of a fold in which no trial is pruned: 3, or a third of `max_epochs` when it is below 9 (so
    that short studies can prune too), at least 1."""
    return min(3, max(1, max_epochs // 3))


def median_pruner(max_epochs: int) -> optuna.pruners.MedianPruner:
    """Prune a trial below the median of earlier trials at the same step, once 5 trials finished; never in
    the warm-up epochs of its first fold (`PruningCallback` keeps them for every later fold)."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_epochs(max_epochs))


class PruningCallback(pl.Callback):
    """Reports after validation; raises `optuna.TrialPruned` at the end of the epoch, so that the epoch's
    metrics are logged first (train's EpochLogger runs before callbacks passed to `train`). With
    `prune=False` (forced configs) it only reports. `fold` (0-based) and `max_epochs` (given only for a
    walk-forward trial): the fold's steps start at ``fold * max_epochs``; in a fold after the first, its
    first `warmup_epochs` are not pruned either."""

    def __init__(self, trial: optuna.Trial, prune: bool = True, *, fold: int = 0, max_epochs: int = 0):
        self.trial, self.prune = trial, prune
        self.fold, self.offset, self.walk_forward = fold, fold * max_epochs, max_epochs > 0
        self.warmup = warmup_epochs(max_epochs) if fold else 0
        self.pruned_at: tuple[int, float] | None = None  # (epoch within its fold, val AUROC)
        self.reported = 0  # epochs reported

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(MONITOR)
        if trainer.sanity_checking or value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), self.offset + epoch)
        self.reported += 1
        if self.prune and epoch >= self.warmup and self.trial.should_prune():
            self.pruned_at = (epoch, float(value))

    def where(self) -> str:
        """Where it pruned, counted from 1: "epoch E", or "fold F epoch E" in a walk-forward trial."""
        epoch = f"epoch {self.pruned_at[0] + 1}"
        return f"fold {self.fold + 1} {epoch}" if self.walk_forward else epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at {self.where()} with {MONITOR} {self.pruned_at[1]:.4f}")
