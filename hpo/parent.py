"""The study's MLflow parent run (tag `kind=study`): created once per study, its id kept as a study user
attribute so that every session and worker nests its trials under it; a per-trial summary (one batched
call) and, at the end of a session, the plots and the best config. Trials are ranked by the objective
(`training.train.OBJECTIVE`, on val_select) and reported on val_report."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import optuna
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conventions.errors import UserError
from hpo.study_record import StudyRecord
from hpo.trial_record import TrialRecord
from models.budgets import parse_budget
from models.intervals import SAYS, fold_selection_null, verdict
from training import notes, plotting, study_tags, tracking, walkforward
from training.config import RunConfig
from training.train import OBJECTIVE, SELECT


def check_objective(study: optuna.Study) -> None:
    """A `UserError` unless the study's trials carry OBJECTIVE: values on other samples never mix with them."""
    found = StudyRecord.of(study).objective
    if found != OBJECTIVE:
        raise UserError(f"study {study.study_name!r} selected its trials on {found}, which is also what it reports; "
                        f"trials are now selected on {OBJECTIVE} ({SELECT}) and their values do not compare: "
                        "start a new study (another --study-name)")


def launcher_run() -> str | None:
    """The run `mlflow run` created for this process (MLFLOW_RUN_ID), taken out of the environment so that
    a trial's `start_run` does not resume it."""
    return os.environ.pop("MLFLOW_RUN_ID", None)


def experiment_of(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.experiment_id


def create_parent(name: str, tags: dict[str, str], params: dict[str, object], adopt: str | None = None) -> str:
    """A new run of kind `study`; `adopt`: make this run (`mlflow run`'s) the parent instead."""
    client = MlflowClient()
    run_id = adopt or client.create_run(tracking.experiment_id()).info.run_id
    client.update_run(run_id, name=name)
    tracking.log_batch(run_id, params=params, tags={study_tags.KIND: study_tags.STUDY, **tags})
    return run_id


def mark_session(run_id: str, parent_id: str, study_name: str) -> None:
    """`mlflow run`'s run of a session that resumed or joined a study: a pointer nested under its parent."""
    tracking.log_batch(run_id, tags={
        study_tags.KIND: "study-session", study_tags.STUDY_NAME: study_name, "mlflow.parentRunId": parent_id,
        "mlflow.note.content": f"A session of study `{study_name}`: its trials are nested under run {parent_id}.",
    })


def reopen(run_id: str) -> None:
    MlflowClient().update_run(run_id, status="RUNNING")


def close(run_id: str, study: optuna.Study, status: str) -> None:
    """End the parent unless another worker still runs a trial (the last one out ends it)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        MlflowClient().set_terminated(run_id, status)


def summarise(run_id: str, study: optuna.Study) -> None:
    """Counts by state; the best trial's objective (OBJECTIVE, on val_select), its evidence on val_report
    (which chose nothing) and params; the val_report AUROC of each budget's best trial: one batched call,
    step = trials. `best.<param>` tags of an earlier best that the new best lacks are deleted."""
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state for t in trials)
    step = sum(counts[s] for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    metrics = {f"trials/{s.name.lower()}": counts[s] for s in
               (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)}
    tags = {}
    best = best_trial(trials)
    if best is not None:
        metrics[OBJECTIVE] = best.value
        record = TrialRecord.of(best)
        metrics |= record.evidence or {}
        metrics |= {f"best_by_budget/{b}": reported(t) for b, t in best_by_budget(trials).items()}
        tags = {study_tags.BEST_TRIAL: str(best.number), study_tags.BEST_RUN_ID: record.mlflow_run_id or "",
                "best_baseline": record.best_baseline or "",
                "best_params": json.dumps(best.params, sort_keys=True),
                **{f"best.{k}": str(v) for k, v in best.params.items()}}
    tracking.log_batch(run_id, metrics, step=step, tags=tags)
    if best is not None:
        client = MlflowClient()
        for key in client.get_run(run_id).data.tags:
            if key.startswith("best.") and key not in tags:
                try:
                    client.delete_tag(run_id, key)
                except MlflowException as err:  # another worker summarising at the same time deleted it first
                    if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The completed trials that can be the study's best (a transferred config only within a budget)."""
    return [t for t in trials if t.state == TrialState.COMPLETE and not TrialRecord.of(t).outside_budgets]


def _rank(t: optuna.trial.FrozenTrial) -> tuple[float, int]:
    """The highest objective first, the earliest trial on ties."""
    return t.value, -t.number


def best_trial(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The counted trial with the highest objective, or None."""
    return max(counted(trials), key=_rank, default=None)


def reported(t: optuna.trial.FrozenTrial) -> float:
    """A completed trial's `best/val/auroc`, on val_report: what is reported for a trial the objective chose."""
    return TrialRecord.of(t).evidence["best/val/auroc"]


def budget_of(t: optuna.trial.FrozenTrial) -> str | None:
    """The budget a trial is labelled with: its sampled one, or the one a transferred config fits."""
    budget = TrialRecord.of(t).budget or t.params.get("budget")
    return None if budget in (None, "none") else budget


def best_by_budget(trials: list[optuna.trial.FrozenTrial]) -> dict[str, optuna.trial.FrozenTrial]:
    """Each budget's counted trial with the highest objective."""
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for t in counted(trials):
        budget = budget_of(t)
        if budget is not None and (budget not in best or _rank(t) > _rank(best[budget])):
            best[budget] = t
    return best


# the selection null's number of random scorers: every epoch evaluation of every counted trial, an upper bound
# on the selections made (a trial's value is already the best of its epochs; its epochs are correlated, so
# they are fewer independent tries than this)
NULL_METHOD = "epoch_evaluations_upper_bound"


def fold_evaluations(trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    """Per fold, the AUROCs on its val_select part the study's best value is the best of: each counted trial's
    epochs in that fold (`NULL_METHOD`); one entry for a one-split study."""
    per_trial = [TrialRecord.of(t).epochs_per_fold for t in counted(trials)]
    return [int(sum(col)) for col in zip(*per_trial, strict=True)] if per_trial else [0]


def evaluations(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Every epoch evaluation of every counted trial, over all folds: how many random scorers the null draws."""
    return sum(fold_evaluations(trials))


def null_of(trials: list[optuna.trial.FrozenTrial], select_labels: list[np.ndarray], horizon: int,
            train_labels: list[np.ndarray]) -> float:
    """The selection null of the study's best value (`selection/null_auroc_p95`): the 95th percentile of the
    best AUROC that as many random scorers as the counted trials had epoch evaluations (`fold_evaluations`,
    `NULL_METHOD`) reach on the labels the trials were selected on, fold by fold, averaged over the folds as
    the trials' values are (`models.intervals.fold_selection_null`), with the scorers' smoothness from the
    dependence of each fold's `train_labels` (`models.intervals.block_length`)."""
    return fold_selection_null(select_labels, fold_evaluations(trials), horizon=horizon, seed=len(counted(trials)),
                               histories=train_labels)


def log_report(run_id: str, study: optuna.Study, select_labels: list[np.ndarray], horizon: int,
               train_labels: list[np.ndarray]) -> float | None:
    """Plots (optimisation history, parameter importances, val_report AUROC of each budget's best trial, and
    for a walk-forward study the best trial's AUROC per fold, `training.walkforward.PLOT`), the best trial's
    config as `best_config.json` (usable with `--use-best-from`) and the selection null (`null_of`, on each
    fold's val_select and train labels: `selection/null_auroc_p95`, returned; `selection/null_evaluations`;
    param `selection.null_method`)."""
    client = MlflowClient()
    trials = study.get_trials(deepcopy=False)
    best = best_trial(trials)
    if best is None:
        return None
    complete = counted(trials)
    k = evaluations(trials)
    null = null_of(trials, select_labels, horizon, train_labels)
    tracking.log_batch(run_id, {"selection/null_auroc_p95": null, "selection/null_evaluations": k},
                       step=len(complete), tags={"selection.null_method": NULL_METHOD})
    for name, figure in (("optimization_history", _history(study, null, k, len(select_labels))),
                         ("param_importances", _importances(study, len(complete))),
                         ("best_val_auroc_per_budget", _per_budget(complete))):
        if figure is not None:
            client.log_figure(run_id, figure, f"plots/{name}.png")
    best_run = TrialRecord.of(best).mlflow_run_id
    if best_run:
        run = client.get_run(best_run)
        config = RunConfig.from_params(run.data.params)
        client.log_text(run_id, config.to_json(), "best_config.json")
        if config.data.folds > 1:
            client.log_figure(run_id, walkforward.figure(f"{study.study_name} best trial {best.number}",
                                                         run.data.metrics, run.data.tags), walkforward.PLOT)
    client.log_text(run_id, trials_table(trials), "study/trials.md")
    describe(run_id, study, best, null)
    return null


def describe(run_id: str, study: optuna.Study, best: optuna.trial.FrozenTrial, null: float) -> None:
    """The parent's Markdown note (`training.notes.study_note`), keeping the held-out section promotion wrote."""
    old = MlflowClient().get_run(run_id).data.tags
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    record = TrialRecord.of(best)
    note = notes.study_note(
        study.study_name, old.get(study_tags.STORAGE, "?"), objective=best.value, null=null,
        best=notes.run_link(f"trial {best.number}", experiment_of(run_id), record.mlflow_run_id or ""),
        evidence_line=notes.evidence(record.evidence, record.best_baseline, "val", "best/"),
        by_budget={b: reported(t) for b, t in sorted(best_by_budget(trials).items(), key=lambda i: parse_budget(i[0]))},
        counts=dict(counts), phase1=phase1_link(old))
    held = notes.held_out_of(old.get(notes.NOTE, ""))
    tracking.log_batch(run_id, tags={notes.NOTE: notes.with_held_out(note, held) if held else note})


def phase1_link(tags: dict[str, str]) -> str | None:
    """A phase 2 parent's link to its phase-1 study (tags `phase1_study`, `phase1_run_id`), else None."""
    run = tags.get("phase1_run_id")
    return notes.run_link(tags.get("phase1_study", run), experiment_of(run), run) if run else None


def trials_table(trials: list[optuna.trial.FrozenTrial]) -> str:
    """Every trial in one Markdown table, the completed ones first, by objective: the study at a glance."""
    rows = sorted(trials, key=lambda t: (t.state != TrialState.COMPLETE, -(t.value or 0.0), t.number))
    lines = [f"| trial | state | budget | style | {OBJECTIVE} | best/val/auroc [95% CI] | best baseline "
             "| model vs it (uncorrected: one of the trials, not a finding) |",
             "|---|---|---|---|---|---|---|---|"]
    for t in rows:
        record = TrialRecord.of(t)
        ev = record.evidence
        shown = (f"{ev['best/val/auroc']:.4f} [{ev['best/val/auroc_ci_low']:.4f}, {ev['best/val/auroc_ci_high']:.4f}]"
                 if ev else "")
        says = (SAYS[verdict(ev["best/val/auroc_vs_best_baseline_ci_low"],
                             ev["best/val/auroc_vs_best_baseline_ci_high"])] if ev else "")
        value = f"{t.value:.4f}" if t.value is not None else ""
        lines.append(f"| {t.number} | {t.state.name.lower()} | {budget_of(t) or ''} | {record.style or ''} "
                     f"| {value} | {shown} | {record.best_baseline or ''} | {says} |")
    return "\n".join(lines) + "\n"


def trial_points(trials: list[optuna.trial.FrozenTrial]) -> list[plotting.TrialPoint]:
    """The finished trials as the optimisation history draws them: a pruned trial without a value at its
    last report; `counts` where it can be the best (`counted`)."""
    keep = {t.number for t in counted(trials)}
    points = []
    for t in sorted((t for t in trials if t.state.is_finished()), key=lambda t: t.number):
        value = t.value
        if value is None and t.state == TrialState.PRUNED and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        points.append(plotting.TrialPoint(t.number, t.state.name, value, t.number in keep))
    return points


def reported_estimate(t: optuna.trial.FrozenTrial) -> plotting.Estimate:
    """A completed trial's `best/val/auroc` (val_report) with its interval."""
    evidence = TrialRecord.of(t).evidence
    return plotting.Estimate(evidence["best/val/auroc"], evidence.get("best/val/auroc_ci_low"),
                             evidence.get("best/val/auroc_ci_high"))


def reported_baseline(t: optuna.trial.FrozenTrial) -> plotting.Baseline | None:
    """The best baseline a completed trial's evidence names, on the same val_report samples, or None."""
    record = TrialRecord.of(t)
    evidence, name = record.evidence or {}, record.best_baseline
    if not name or "baseline/best/val/auroc" not in evidence:
        return None
    return plotting.Baseline(name, plotting.Estimate(evidence["baseline/best/val/auroc"]))


def _history(study: optuna.Study, null: float, k: int, folds: int):
    return plotting.history_figure(f"{study.study_name}: optimisation history",
                                   trial_points(study.get_trials(deepcopy=False)), f"{OBJECTIVE} (objective)",
                                   plotting.Null(null, k, folds))


def _importances(study: optuna.Study, n_complete: int):
    if n_complete < 2:
        return None
    try:
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # too few trials, or a search space with one point
        return None
    if not importances:
        return None
    return plotting.importances_figure(f"{study.study_name}: parameter importances", importances,
                                       "importance (optuna.importance default evaluator)")


def _per_budget(complete: list[optuna.trial.FrozenTrial]):
    best = best_by_budget(complete)
    if not best:
        return None
    budgets = sorted(best, key=parse_budget)
    return plotting.groups_figure(
        f"each budget's best trial (chosen by {OBJECTIVE}) on val_report, which chose nothing",
        budgets, [reported_estimate(best[b]) for b in budgets], [reported_baseline(best[b]) for b in budgets],
        "parameter budget", "best/val/auroc (val_report), 95% CI")
