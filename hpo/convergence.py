"""Study-level early stopping, one precise rule: after finished trial n (complete or pruned, in the order
they finished), stop when best(first n) - best(first n - patience) < threshold, where best(first k) is the
highest objective (`training.train.OBJECTIVE`) among the completed trials of the first k (with threshold 0:
when there was no gain at all). Pruned trials count as finished trials, never as a best."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conventions.errors import UserError

if TYPE_CHECKING:
    import optuna

TOLERANCE = 1e-12  # 0.62 - 0.60 < 0.02 in floats


@dataclass(frozen=True)
class Convergence:
    patience: int
    threshold: float = 0.0

    def __post_init__(self):
        if self.patience < 1 or not self.threshold >= 0:  # NaN too
            raise UserError(f"--early-stop-patience must be >= 1 and --early-stop-threshold >= 0, "
                            f"got {self.patience} and {self.threshold}")

    def stop_reason(self, finished: Sequence[tuple[int, float | None]]) -> str | None:
        """`finished`: (trial number, value) in finishing order, value None for a pruned trial; the reason
        to stop, or None."""
        n = len(finished)
        if n <= self.patience:
            return None
        now, then = _best(finished), _best(finished[: n - self.patience])
        if now is None or then is None:
            return None
        gain = now[1] - then[1]
        if gain >= self.threshold - TOLERANCE and gain > 0:
            return None
        return (f"converged: the best objective gained {gain:.4f} (< {self.threshold:g}) over the last "
                f"{self.patience} finished trials; best {now[1]:.4f} (trial {now[0]}), {n} trials finished")

    def check(self, study: optuna.Study) -> str | None:
        from optuna.trial import TrialState

        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        done.sort(key=lambda t: (t.datetime_complete, t.number))
        return self.stop_reason([(t.number, t.value if t.state == TrialState.COMPLETE else None) for t in done])


def _best(finished: Sequence[tuple[int, float | None]]) -> tuple[int, float] | None:
    scored = [(number, value) for number, value in finished if value is not None and math.isfinite(value)]
    return max(scored, key=lambda nv: (nv[1], -nv[0])) if scored else None
