"""Study-level early stopping: stop when the best val AUROC has not improved by at least `threshold` over
the last `patience` completed trials (an improvement smaller than `threshold` does not reset the count)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState


@dataclass(frozen=True)
class Convergence:
    patience: int
    threshold: float = 0.0

    def __post_init__(self):
        if self.patience < 1 or self.threshold < 0:
            raise ValueError(f"--early-stop-patience must be >= 1 and --early-stop-threshold >= 0, "
                             f"got {self.patience} and {self.threshold}")

    def stop_reason(self, values: Sequence[float]) -> str | None:
        """`values`: completed trials' values in completion order; the reason to stop, or None."""
        if not values:
            return None
        best, best_at = values[0], 0
        for i, value in enumerate(values[1:], start=1):
            gain = value - best
            if gain > 0 and gain >= self.threshold - 1e-12:  # tolerance: 0.62 - 0.60 < 0.02 in floats
                best, best_at = value, i
        since = len(values) - 1 - best_at
        if since < self.patience:
            return None
        return (f"converged: no val AUROC improvement >= {self.threshold:g} in {since} completed trials "
                f"(best {best:.4f}, completed trial {best_at + 1} of {len(values)})")

    def check(self, study: optuna.Study) -> str | None:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done.sort(key=lambda t: (t.datetime_complete, t.number))
        return self.stop_reason([t.value for t in done])
