"""Seeded TPE that stays distinct across workers."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """TPE (Optuna's defaults: multivariate, constant liar) reseeded from (seed, trial number) before
    each trial. One worker reproduces its study from the seed; two workers sharing a study never draw the
    same candidates, as two TPESampler(seed) would for trials started from the same history."""

    def __init__(self, seed: int):
        self.seed = seed
        self._tpe = TPESampler(seed=seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe = TPESampler(seed=int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0]))
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)
