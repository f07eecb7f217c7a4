"""Phase 2 (`--supplementary`): TPE restricted to the two budgets whose best phase-1 objective is highest."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from conventions.errors import UserError
from hpo.parent import best_by_budget, check_objective
from hpo.storage import open_storage, study_exists
from hpo.study_record import StudyRecord
from models.budgets import parse_budget

SUFFIX = "-phase2"


@dataclass
class Phase2:
    storage: BaseStorage
    shown: str  # the storage, password masked
    phase1: optuna.Study
    name: str
    budgets: list[str]


def plan(storage_url: str | None, phase1_name: str) -> Phase2:
    """Phase 2 of a phase-1 study: its name and budgets (those it was created with, when resumed)."""
    storage, shown = open_storage(storage_url, must_exist=True)
    phase1 = load_phase1(storage, phase1_name, shown)
    name = phase1_name + SUFFIX
    return Phase2(storage, shown, phase1, name, existing_budgets(storage, name) or select_budgets(phase1))


def load_phase1(storage: BaseStorage, name: str, shown: str) -> optuna.Study:
    if not study_exists(storage, name):
        raise UserError(f"--supplementary: no phase-1 study {name!r} in {shown}; run phase 1 first "
                         "(the same command without --supplementary), or name it with --study-name")
    phase1 = optuna.load_study(study_name=name, storage=storage)
    check_objective(phase1)  # its budgets would be chosen on other samples
    return phase1


def existing_budgets(storage: BaseStorage, name: str) -> list[str] | None:
    """The budgets a phase-2 study was created with (a rerun resumes it as it was)."""
    if not study_exists(storage, name):
        return None
    return StudyRecord.of(optuna.load_study(study_name=name, storage=storage)).budgets


def select_budgets(phase1: optuna.Study, k: int = 2) -> list[str]:
    """The `k` budgets with the best objective among completed phase-1 trials, smallest budget first."""
    complete = phase1.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = {b: t.value for b, t in best_by_budget(complete).items()}
    if len(best) < k:
        found = ", ".join(f"{b} ({v:.4f})" for b, v in best.items()) or "none"
        raise UserError(f"--supplementary needs completed trials in at least {k} budgets of phase-1 study "
                         f"{phase1.study_name!r}; it has them in {len(best)}: {found}")
    top = sorted(best, key=lambda b: (-best[b], parse_budget(b)))[:k]
    return sorted(top, key=parse_budget)


def phase1_link(phase1: optuna.Study) -> dict[str, str]:
    """Tags of the phase-2 parent run that point to phase 1."""
    return {"phase1_study": phase1.study_name, "phase1_run_id": StudyRecord.of(phase1).mlflow_parent_run_id or ""}
