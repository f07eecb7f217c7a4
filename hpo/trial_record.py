"""What a trial records as Optuna user attributes, and the only place their names are written: a
`TrialWriter` sets them on a live trial (or on a stored one, `TrialWriter.stored`), `TrialRecord.of` reads
them from a frozen trial, with the defaults that trials of older studies, which lack some, need.

Each attribute is named as the `TrialRecord` field that holds it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from hpo.worker import Worker

SEARCHED = "searched"  # the style of a trial whose shape the sampler chose (not forced, not transferred)


@dataclass(frozen=True)
class TrialRecord:
    """A trial's user attributes; a field is its default where the trial does not record it."""

    # set when enqueued
    forced: bool = False  # one of the forced grid's configs (never pruned)
    style: str | None = None  # models.budgets.STYLES, SEARCHED or "transferred"; set again once shaped
    regularisation: str | None = None  # a forced config's strong/weak regularisation
    transferred: str | None = None  # the config a transferred trial was taken from (`--transfer`)
    # set while it runs
    mlflow_run_id: str | None = None
    worker: Worker | None = None
    heartbeat: float | None = None  # time.time() of the last beat
    budget: str | None = None  # "none" for a transferred config larger than every budget
    params_count: int | None = None
    outside_budgets: bool = False  # a transferred config larger than every budget: shown, never the best
    # set when it ends
    epochs: int = 0  # epochs trained (up to the pruning; over all its folds)
    fold_epochs: list[int] | None = None  # a completed walk-forward trial's epochs per fold
    evidence: dict[str, float] | None = None  # training.train.EVIDENCE of a completed trial
    best_baseline: str | None = None  # the baseline its evidence compares with
    error: str | None = None  # "Type: message" of the exception that failed it
    failed_reason: str | None = None  # its worker died or was interrupted: it does not count as run

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """A finished trial's record, or a live one's so far."""
        attrs = trial.user_attrs  # a value stored as None reads as missing
        known = {f.name: attrs[f.name] for f in fields(cls) if attrs.get(f.name) is not None}
        if "worker" in known:
            known["worker"] = Worker(**known["worker"])
        return cls(**known)

    def attrs(self) -> dict[str, object]:
        """The attributes that differ from the defaults, as stored: what `enqueue_trial(user_attrs=)` and
        `optuna.trial.create_trial(user_attrs=)` take."""
        return {f.name: _stored(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) != f.default}

    @property
    def counts(self) -> bool:
        """Counts towards `--trials` (unless WAITING): its worker neither died nor was interrupted."""
        return self.failed_reason is None

    @property
    def searched_style(self) -> str:
        """Its style, SEARCHED where none is recorded (neither forced nor transferred)."""
        return self.style or SEARCHED

    @property
    def epochs_per_fold(self) -> list[int]:
        """The epoch evaluations on each fold's select part it chose among (at least 1 each)."""
        return [max(1, e) for e in (self.fold_epochs or [self.epochs])]

    @property
    def why_failed(self) -> str | None:
        """The error that failed it, else why its worker stopped."""
        return self.error or self.failed_reason


def _stored(value: object) -> object:
    return asdict(value) if isinstance(value, Worker) else value


class TrialWriter:
    """Sets a trial's user attributes, each under its `TrialRecord` field's name."""

    def __init__(self, trial: optuna.Trial | None = None, *, storage: BaseStorage | None = None,
                 trial_id: int | None = None):
        self._trial, self._storage, self._trial_id = trial, storage, trial_id

    @classmethod
    def stored(cls, storage: BaseStorage, trial_id: int) -> TrialWriter:
        """A writer for a trial this process does not run (another worker's)."""
        return cls(storage=storage, trial_id=trial_id)

    def _set(self, **values: object) -> None:
        for key, value in values.items():
            if self._trial is not None:
                self._trial.set_user_attr(key, _stored(value))
            else:
                self._storage.set_trial_user_attr(self._trial_id, key, _stored(value))

    def started(self, mlflow_run_id: str) -> None:
        self._set(mlflow_run_id=mlflow_run_id)

    def worker(self, worker: Worker) -> None:
        self._set(worker=worker)

    def beat(self, at: float | None = None) -> None:
        """A heartbeat: now, or `at` (a `time.time()`)."""
        self._set(heartbeat=time.time() if at is None else at)

    def shaped(self, budget: str, style: str, params_count: int | None = None, outside_budgets: bool = False) -> None:
        """Its budget and style, and its parameter count once known."""
        if params_count is not None:
            self._set(params_count=params_count)
        if outside_budgets:
            self._set(outside_budgets=True)
        self._set(budget=budget, style=style)

    def counted_params(self, params_count: int) -> None:
        self._set(params_count=params_count)

    def completed(self, fold_epochs: list[int], evidence: dict[str, float], best_baseline: str) -> None:
        """Its epochs per fold (one entry for a one-split trial), evidence and best baseline."""
        if len(fold_epochs) > 1:
            self._set(fold_epochs=fold_epochs)
        self._set(epochs=sum(fold_epochs), evidence=evidence, best_baseline=best_baseline)

    def pruned(self, epochs: int) -> None:
        self._set(epochs=epochs)

    def errored(self, err: BaseException) -> None:
        self._set(error=f"{type(err).__name__}: {err}"[:4000])

    def failed(self, reason: str) -> None:
        """Its worker died or stopped (`TrialRecord.failed_reason`): it does not count, a rerun runs it again."""
        self._set(failed_reason=reason)
