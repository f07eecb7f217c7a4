"""What a study is asked to do, from the command line: light (no MLflow, no Optuna), so that the dry run
and the argument checks start fast."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from conventions.errors import UserError
from hpo.convergence import Convergence
from models.budgets import StyleGrid, style_grid
from training.config import RunConfig

DEFAULT_STORAGE = "optuna.journal"  # a journal file in the working directory (hpo/storage.py)


def env_seconds(name: str, default: float, *, zero_ok: bool = False) -> float:
    """A duration from the environment variable `name` (unset or empty: `default`); a `UserError` for
    anything but a finite number of seconds > 0 (>= 0 with `zero_ok`)."""
    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{name} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise UserError(f"{name} must be a {'non-negative' if zero_ok else 'positive'} number of seconds, "
                        f"got {text!r}")
    return value


@dataclass
class StudySettings:
    base: RunConfig  # defaults < --use-best-from < flags < --set; searched fields are overridden per trial
    study_name: str  # with `supplementary`: the phase-1 study (phase 2 is `<name>-phase2`)
    trials: int  # the study's size: a rerun runs what is missing
    budgets: list[str]
    pinned: frozenset[str] = frozenset()  # config keys given with --set: not searched
    forced_extremes: bool = False
    transfer: str | None = None  # --use-best-from SRC: its config is enqueued as the study's first trial
    convergence: Convergence | None = None
    pruning: bool = True
    storage: str | None = None
    supplementary: bool = False
    log_checkpoints: bool = False  # trials upload their best checkpoint (promotion retrains from the config)

    def __post_init__(self):
        if self.trials < 1:
            raise UserError(f"--trials must be >= 1, got {self.trials}")

    def check_trials(self, n_forced: int) -> None:
        """`--trials` must hold the forced grid (and the transferred config): a grid cut short compares
        nothing."""
        needed = (n_forced if self.forced_extremes else 0) + (1 if self.transfer else 0)
        if self.trials < needed:
            raise UserError(f"--trials {self.trials} is smaller than the {needed} configs that run first (the forced "
                            f"grid has {n_forced}{' plus the transferred config' if self.transfer else ''}): "
                            f"use --trials {needed} or more")

    def grid(self, budgets: list[str], n_features: int) -> StyleGrid:
        return style_grid(self.base.model, budgets, n_features, self.base.data.input_size)
