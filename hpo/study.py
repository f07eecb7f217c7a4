"""An Optuna study whose trials are nested MLflow runs under one study parent run.

A session: open the storage, create the study or load it (`load_if_exists` semantics, so rerunning a
command resumes it), recover trials whose worker died, then run trials until the study holds `trials`
of them (stale-failed ones aside), or until convergence. Several workers may run the same command at once:
creating the Optuna study is atomic, so exactly one of them creates it, enqueues the forced configs and
creates the MLflow parent; the others wait for the parent's id to appear in the study's user attributes.
Counting the study and creating the next trial is one step across workers (`storage.Admission`), so a study
ends with exactly `trials` counted trials; a worker whose study is full stays while other workers' trials
run, so that one whose worker died (on any machine) is failed after the grace and run again.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import optuna
import pytorch_lightning as pl
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from conventions.errors import UserError
from datamodules.prepared import Prepared, Seen
from hpo import parent, phase2
from hpo.forced import EXTREMES, forced_configs
from hpo.progress import EpochProgress, StudyProgress
from hpo.pruning import PruningCallback, median_pruner
from hpo.recovery import (
    Heartbeat,
    check_timing,
    close_orphan_runs,
    fail_stale_trials,
    heartbeat_s,
)
from hpo.sampling import TrialSeededTPE
from hpo.settings import StudySettings
from hpo.space import SearchSpace, depth_param
from hpo.storage import Admission, open_storage, study_exists
from hpo.study_record import StudyRecord, StudyWriter
from hpo.trial_record import TrialRecord, TrialWriter
from models import baselines
from models.budgets import SHAPE_KEYS, STYLES, StyleGrid, count_params, parse_budget, solve
from training import notes, study_tags, tracking
from training.config import FREE, RunConfig
from training.train import EVIDENCE, MONITOR, OBJECTIVE, SELECT, RunResult, evidence_line, train
from training.walkforward import WalkForwardResult, run_folds

PARENT_WAIT_S = 30.0
FAILURE_STREAK = 3  # this worker's trials failing in a row with the same error stop the study: a bug, not bad luck


class RepeatedFailure(UserError):
    """`FAILURE_STREAK` trials in a row failed with the same error: the study stops instead of spending its
    budget on it (their tracebacks were printed, the error is each trial's `error`)."""


@dataclass
class Outcome:
    study_name: str
    parent_run_id: str
    storage: str  # password masked
    ran: int  # trials finished in this session
    stop_reason: str
    best: FrozenTrial | None
    null_p95: float | None  # selection/null_auroc_p95: what the best of as many random scorers reaches on SELECT
    counts: dict[str, int] = field(default_factory=dict)


def run_study(
    settings: StudySettings, data: Prepared, *, pruner: optuna.pruners.BasePruner | None = None,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """`data`: the prepared data of `settings.base.data` (a study prepares it once for all its trials)."""
    n_features = len(data.feature_names)
    session = _open(settings, n_features, data.fingerprint, pruner, echo, data.seen)
    study, parent_id = session.study, session.parent_id
    parent.reopen(parent_id)
    progress = StudyProgress(settings.trials, _count(study))
    objective = Objective(settings.base, session.space, data, study.study_name, parent_id,
                          parent.experiment_of(parent_id), settings.log_checkpoints, echo)
    ran, reason, null, waiting = 0, "error", None, False
    streak: list[FrozenTrial] = []  # this worker's last trials, failed with one same error
    admission = Admission(settings.storage, study.study_name)

    with tracking.ending(parent_id, close=lambda status: parent.close(parent_id, study, status)):
        try:
            while True:
                _recover(study, session.storage, parent_id, echo)
                with admission:  # one worker at a time from counting to its trial existing
                    reason = settings.convergence.check(study) if settings.convergence else None
                    if reason is None and _count(study) >= settings.trials:
                        reason = f"done: the study holds {settings.trials} trials"
                    trial = study.ask() if reason is None else None  # other workers count it from now on
                if trial is not None:
                    finished = _run_trial(study, trial, objective)
                    ran += 1
                    parent.summarise(parent_id, study)
                    echo(f"{_trial_line(finished)} {progress.status(_count(study))}")
                    streak = _failure_streak(streak, finished)
                    if len(streak) >= FAILURE_STREAK:
                        reason = f"stopped: {len(streak)} trials in a row failed with the same error"
                        raise RepeatedFailure(
                            f"study {study.study_name!r} stopped: trials {', '.join(str(t.number) for t in streak)} "
                            f"failed in a row with the same error ({TrialRecord.of(streak[0]).error}); their "
                            "tracebacks are above; fix it and rerun the same command to resume the study")
                    continue
                running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
                if not running:
                    break
                if not waiting:  # a trial whose worker died is failed after the grace, then run again
                    echo(f"{reason}; waiting for trials {', '.join(map(str, running))} of other workers")
                    waiting = True
                time.sleep(min(heartbeat_s(), 10.0))
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        finally:
            parent.summarise(parent_id, study)
            views = [data.fold(k) for k in range(len(data.folds))]  # one for a one-split study
            null = parent.log_report(parent_id, study, [v.labels(SELECT) for v in views], settings.base.data.horizon,
                                     [v.labels("train") for v in views])
            tracking.log_batch(parent_id, tags={"stop_reason": reason})
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    return Outcome(study.study_name, parent_id, session.shown, ran, reason, parent.best_trial(study.trials), null,
                   {k: v for k, v in counts.items() if v})


@dataclass
class _Session:
    study: optuna.Study
    storage: BaseStorage
    shown: str  # the storage, password masked
    space: SearchSpace
    parent_id: str


def _open(settings: StudySettings, n_features: int, fingerprint: str, pruner: optuna.pruners.BasePruner | None,
          echo: Callable[[str], None], seen: Seen) -> _Session:
    """Validate, then create or load the study, enqueue what it needs and find (or create) its parent run."""
    base, launcher = settings.base, parent.launcher_run()
    if settings.supplementary:
        plan = phase2.plan(settings.storage, settings.study_name)
        name, budgets = plan.name, plan.budgets
        link = phase2.phase1_link(plan.phase1)
    else:
        name, budgets, link = settings.study_name, settings.budgets, {}
    grid = settings.grid(budgets, n_features)  # bad budgets fail before anything is written
    space = SearchSpace.build(base, budgets, set(settings.pinned), n_features)
    settings.check_trials(len(grid.distinct()) * len(EXTREMES))
    check_timing()
    # opening a journal storage creates its file: only once the settings are known to be good
    storage, shown = (plan.storage, plan.shown) if settings.supplementary else open_storage(settings.storage)
    definition = _definition(base, space, fingerprint, budgets, 2 if settings.supplementary else 1)
    definition |= {"data.seen_fingerprint": seen.fingerprint, "data.seen_until": seen.until,
                   "baselines": baselines.SET}
    if settings.supplementary:  # its budgets were chosen on phase 1's trials: the same data, target and folds
        _check_phase1(plan.phase1, definition)

    pruner = pruner or (median_pruner(base.train.max_epochs) if settings.pruning else optuna.pruners.NopPruner())
    study, created = _create_or_load(storage, name, TrialSeededTPE(base.train.seed), pruner)
    parent_id = StudyRecord.of(study).mlflow_parent_run_id or (None if created else _wait_for_parent(study))
    if parent_id is not None:
        _check_definition(study, definition)
    else:  # this worker created the study (or its creator died before creating the parent)
        StudyWriter(study).defined(definition)
    _enqueue(study, settings, space, grid)
    if parent_id is None:
        parent_id = parent.create_parent(name, _parent_tags(base, budgets, shown, link) | seen.tags(),
                                         _parent_params(base, space),
                                         adopt=launcher)
        StudyWriter(study).parent(parent_id)
        echo(f"study {name!r} created in {shown}; MLflow parent run {parent_id}")
        if settings.forced_extremes:
            styles = "; ".join(f"{style}: {depth} layer(s)" for style, depth in STYLES.items())
            echo(f"forced trials run first: fixed configs, one per budget x style ({styles}; each as wide as the "
                 "budget allows) x strong/weak regularisation, never pruned")
    else:
        if launcher is not None:
            parent.mark_session(launcher, parent_id, name)
        echo(f"study {name!r} loaded from {shown} ({_count(study)} trials so far); MLflow parent run {parent_id}")
    return _Session(study, storage, shown, space, parent_id)


@dataclass
class Objective:
    """One trial: a nested MLflow run (tags first), the config from the trial's params, `train` inside it.

    The run ends FINISHED with `trial_state=COMPLETE` or `PRUNED`, FAILED with `trial_state=FAIL` and an
    `error` tag on any exception (Optuna marks the trial FAIL and the study goes on, unless `FAILURE_STREAK`
    trials in a row failed with the same error: `RepeatedFailure`), KILLED on Ctrl-C
    (`tracking.ending`)."""

    base: RunConfig
    space: SearchSpace
    data: Prepared  # the study's (`prepare(base.data)`): every trial trains on it
    study_name: str
    parent_run_id: str
    experiment: str  # the parent's
    log_checkpoints: bool = False
    echo: Callable[[str], None] = print

    @property
    def n_features(self) -> int:
        return len(self.data.feature_names)

    def __call__(self, trial: optuna.Trial) -> float:
        record, write = TrialRecord.of(trial), TrialWriter(trial)
        forced = record.forced
        tags = {study_tags.STUDY_NAME: self.study_name, study_tags.TRIAL_NUMBER: str(trial.number),
                "forced": str(forced).lower(), "trial_state": "RUNNING"}
        if record.transferred is not None:
            tags["transferred_from"] = record.transferred
        with Heartbeat(trial), tracking.run_context(
                kind=study_tags.TRIAL, run_name=notes.trial_name(trial.number, None, None, "running"),
                parent_run_id=self.parent_run_id,
                experiment=self.experiment, tags=tags, finished_on=(optuna.TrialPruned,)) as run:
            write.started(run.info.run_id)
            state, result = "FAIL", None
            pruning: list[PruningCallback] = []  # one per fold begun
            try:
                cfg = self.config(trial)
                result = self.fit(trial, cfg, pruning, prune=not forced)  # the forced grid is compared whole
                if not (math.isfinite(result.objective) and math.isfinite(result.val_auroc)):
                    raise ValueError(f"{OBJECTIVE} is {result.objective} and best/val/auroc {result.val_auroc} "
                                     "(one class in a val part?)")
                write.completed(result.fold_epochs, {k: result.metrics[k] for k in EVIDENCE}, result.best_baseline)
                state = "COMPLETE"
                return result.objective
            except optuna.TrialPruned:
                state = "PRUNED"
                write.pruned(sum(p.reported for p in pruning))
                raise
            except UpdateFinishedTrialError as err:  # the run's `error` says why
                raise UpdateFinishedTrialError(f"another worker failed trial {trial.number}, judging its worker "
                                               "dead: its result is discarded") from err
            except Exception as err:
                write.errored(err)
                raise
            except (KeyboardInterrupt, SystemExit):
                write.failed("interrupted")  # not counted: a rerun runs it again
                raise
            finally:
                mlflow.set_tags({"trial_state": state, **self.describe(trial, state, forced, result, pruning)})

    def fit(self, trial: optuna.Trial, cfg: RunConfig, pruning: list[PruningCallback], *,
            prune: bool) -> RunResult | WalkForwardResult:
        """`train` on the study's data, or `run_folds` for a walk-forward study (the trial's run is then the
        folds' parent), reporting every epoch of every fold to the pruner (`PruningCallback`)."""
        k_folds = cfg.data.folds

        def callbacks(k: int) -> tuple[pl.Callback, ...]:
            pruning.append(PruningCallback(trial, prune, fold=k, max_epochs=cfg.train.max_epochs if k_folds > 1 else 0))
            where = f"trial {trial.number}" + (f" fold {k + 1}/{k_folds}" if k_folds > 1 else "")
            return pruning[-1], EpochProgress(where, self.echo)

        if k_folds > 1:
            return run_folds(cfg, data=self.data, callbacks=callbacks, progress=False, plots=False,
                             log_checkpoint=self.log_checkpoints, finished_on=(optuna.TrialPruned,))
        return train(cfg, callbacks=callbacks(0), progress=False, plots=False, log_checkpoint=self.log_checkpoints,
                     data=self.data)

    def describe(self, trial: optuna.Trial, state: str, forced: bool, result: RunResult | WalkForwardResult | None,
                 pruning: list[PruningCallback]) -> dict:
        """The trial run's name and Markdown note once it has ended."""
        record = TrialRecord.of(trial)
        budget, style = record.budget, record.style
        at = pruning[-1].where() if pruning and pruning[-1].pruned_at else "?"
        why = {"PRUNED": f"Pruned at {at}: its val_select AUROC was below the median of earlier trials at that "
                         "epoch.",
               "FAIL": f"Failed: {record.why_failed or 'interrupted'}"}
        body = None if result is None else result.note
        return {"mlflow.runName": notes.trial_name(trial.number, budget, style, state),
                notes.NOTE: notes.trial_note(self.study_name, trial.number, state, budget=budget, style=style,
                                             forced=forced, body=body, why=why.get(state))}

    def config(self, trial: optuna.Trial) -> RunConfig:
        """The trial's config; its budget and style are tagged before the shape is solved."""
        record, write = TrialRecord.of(trial), TrialWriter(trial)
        transferred = record.transferred is not None
        values = self.space.suggest(trial, shape=not transferred)
        cfg = self.space.apply(self.base, values)
        if transferred:  # scored and shown; it counts for the best only within one of the budgets
            count = count_params(cfg.model.name, self.n_features, cfg.data.input_size, **cfg.model.hp)
            budget = next((b for b in self.space.budgets if count <= parse_budget(b)), "none")
            style = "transferred"
            write.shaped(budget, style, count, outside_budgets=budget == "none")
        else:
            budget, style = values["budget"], record.searched_style
            write.shaped(budget, style)
        mlflow.set_tags({"budget": budget, "style": style})
        if transferred:
            return cfg
        shape = solve(cfg.model, budget, values["n_layers"], self.n_features, cfg.data.input_size)
        if shape is None:  # the depth ranges are conservative (hpo/space.py): this is a bug
            raise RuntimeError(f"no {values['n_layers']}-layer {cfg.model.name} fits {budget} at {cfg.model}")
        write.counted_params(shape.count)
        return cfg.override(shape.hp)


def _run_trial(study: optuna.Study, trial: optuna.Trial, objective: Objective) -> FrozenTrial:
    """The objective on `trial`, then its state told (what `study.optimize` does, with `catch=(Exception,)`).
    A trial that another worker failed meanwhile, judging this one dead (`hpo.recovery`), keeps that
    verdict: its worker finds out at its next write to the trial, which stops the training, and telling is
    skipped."""
    value, state = None, TrialState.FAIL
    try:
        value, state = objective(trial), TrialState.COMPLETE
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except UpdateFinishedTrialError:
        pass
    except tracking.TrackingRefused:  # the server stopped taking this worker's credentials: the worker stops
        TrialWriter(trial).failed("refused by the tracking server")  # as if it died: run again
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    except Exception:  # recorded on the trial and its run; the study goes on, the traceback is shown
        traceback.print_exc()
    except BaseException:  # Ctrl-C, SIGTERM: the trial is not counted (`failed_reason`) and the session ends
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    return study.tell(trial, value, state=state, skip_if_finished=True)


def _failure_streak(streak: list[FrozenTrial], finished: FrozenTrial) -> list[FrozenTrial]:
    """`streak` followed by `finished`: longer when it failed with the streak's error (its `error`), a new
    streak when it failed with another, empty when it did not fail with an error."""
    error = TrialRecord.of(finished).error if finished.state == TrialState.FAIL else None
    if error is None:
        return []
    if streak and TrialRecord.of(streak[0]).error == error:
        return [*streak, finished]
    return [finished]


def _recover(study: optuna.Study, storage: BaseStorage, parent_id: str, echo: Callable[[str], None]) -> None:
    """Fail the trials of dead workers and end their MLflow runs, enqueue their forced configs again;
    before each trial (one query each)."""
    stale = fail_stale_trials(study, storage)
    if stale:
        echo(f"trials {', '.join(map(str, stale))} were left RUNNING by a dead worker: marked FAIL")
    close_orphan_runs(study, parent_id)
    requeued = _requeue_forced(study)
    if requeued:
        echo(f"forced trials {', '.join(map(str, requeued))} did not finish: enqueued again")


def _requeue_forced(study: optuna.Study) -> list[int]:
    """Forced trials whose worker died or was interrupted (`failed_reason`) are enqueued again, unless a
    trial with their params is already waiting, running or done: the forced grid is compared whole."""
    trials = study.get_trials(deepcopy=False)

    def key(t: FrozenTrial) -> str:
        return json.dumps(t.system_attrs.get("fixed_params"), sort_keys=True)

    records = {t.number: TrialRecord.of(t) for t in trials}
    present = {key(t) for t in trials if records[t.number].forced and records[t.number].counts}
    requeued = []
    for t in trials:
        r = records[t.number]
        if r.forced and not r.counts and key(t) not in present:
            again = TrialRecord(forced=True, style=r.style, regularisation=r.regularisation)
            study.enqueue_trial(t.system_attrs["fixed_params"], user_attrs=again.attrs())
            present.add(key(t))
            requeued.append(t.number)
    return requeued


def _create_or_load(storage: BaseStorage, name: str, sampler, pruner) -> tuple[optuna.Study, bool]:
    """Load the study when it exists (a journal records every create attempt, even a refused one), else
    create it; of workers creating it at once, one succeeds and the others load it."""
    try:
        if not study_exists(storage, name):
            return optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                       pruner=pruner), True
    except DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"study {name!r} exists but does not maximise: not an HPO study of this project")
    return study, False


def _wait_for_parent(study: optuna.Study) -> str | None:
    deadline = time.monotonic() + PARENT_WAIT_S
    while time.monotonic() < deadline:
        found = StudyRecord.of(study).mlflow_parent_run_id
        if found is not None:
            return found
        time.sleep(0.5)
    return None


def _definition(base: RunConfig, space: SearchSpace, fingerprint: str, budgets: list[str], phase: int) -> dict:
    """Everything a study holds fixed: the flattened config less what is searched or solved per trial and
    `FREE`, the data fingerprint (data, tier, target, splits), the budgets, the phase and the objective."""
    varied = {key for key, _ in space.dims.values()} | {f"model.{k}" for k in SHAPE_KEYS} | set(FREE)
    fixed = {k: v for k, v in base.to_params().items() if k not in varied}
    return {**fixed, "data.fingerprint": fingerprint, "budgets": ",".join(budgets), "phase": str(phase),
            "objective": OBJECTIVE}


def _check_definition(study: optuna.Study, definition: dict) -> None:
    """Resuming a study of another objective, or with any setting of its definition changed, is a
    `UserError` (naming each changed setting)."""
    parent.check_objective(study)
    # a study made before the baseline set was recorded judged its trials against v1 (chosen on val_report)
    recorded = StudyRecord.of(study).definition
    stored = {"baselines": baselines.LEGACY_SET, **(definition if recorded is None else recorded)}
    diff = {k: (stored[k], v) for k, v in definition.items() if k in stored and str(stored[k]) != str(v)}
    if diff:
        what = "; ".join(f"{k}: {old} in the study, {new} now" for k, (old, new) in diff.items())
        raise UserError(f"study {study.study_name!r} was created with other settings ({what}); rerun it with "
                         "its own settings or choose another --study-name")


def _check_phase1(phase1: optuna.Study, definition: dict) -> None:
    """A phase 2 whose fixed settings differ from its phase 1's (other data, target or folds: its budgets were
    chosen on other samples) is a `UserError` naming each difference."""
    stored = StudyRecord.of(phase1).definition or {}
    diff = {k: (stored[k], v) for k, v in definition.items()
            if k in stored and k not in ("budgets", "phase") and str(stored[k]) != str(v)}
    if diff:
        what = "; ".join(f"{k}: {old} in phase 1, {new} now" for k, (old, new) in diff.items())
        raise UserError(f"--supplementary: phase 2 of {phase1.study_name!r} must run with phase 1's settings "
                        f"({what}); give the flags phase 1 was run with")


def _enqueue(study: optuna.Study, settings: StudySettings, space: SearchSpace, grid: StyleGrid) -> None:
    """The transferred config first, then the forced configs; each set once per study (a study user
    attribute records it), so resuming never enqueues them twice."""
    done = set(StudyRecord.of(study).enqueued)
    new = []
    base_values = space.values_of(settings.base)
    if settings.transfer and f"transfer:{settings.transfer}" not in done:
        study.enqueue_trial(base_values, user_attrs=TrialRecord(transferred=settings.transfer).attrs(),
                            skip_if_exists=True)
        new.append(f"transfer:{settings.transfer}")
    if settings.forced_extremes and "forced" not in done:
        for forced in forced_configs(grid, base_values, depth_param):
            record = TrialRecord(forced=True, style=forced.style, regularisation=forced.regularisation.name)
            study.enqueue_trial(forced.params, skip_if_exists=True, user_attrs=record.attrs())
        new.append("forced")
    if new:
        StudyWriter(study).enqueued(done | set(new))


def _count(study: optuna.Study) -> int:
    """Trials that count towards `--trials`: all but WAITING ones and those a dead worker left behind."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.WAITING and TrialRecord.of(t).counts)


def _parent_tags(base: RunConfig, budgets: list[str], shown: str, link: dict[str, str]) -> dict[str, str]:
    tags = {"model": base.model.name, "tier": base.data.tier, "input_size": str(base.data.input_size),
            "budgets": ",".join(budgets), study_tags.STORAGE: shown, "phase": "2" if link else "1", **link}
    note = f"Optuna study in `{shown}`; rerun the same `python -m hpo` command to resume it."
    if link:
        note += f" Phase 2 of {parent.phase1_link(link)}."
    return {**tags, "mlflow.note.content": note}


def _parent_params(base: RunConfig, space: SearchSpace) -> dict[str, object]:
    return {"study.sampler": "TPE (multivariate, constant liar), reseeded per trial", "study.seed": base.train.seed,
            "study.depths": ",".join(f"{b}:1-{d}" for b, d in space.depths.items()),
            "study.searched": ",".join(space.dims)}


def _trial_line(t: FrozenTrial) -> str:
    record, budget = TrialRecord.of(t), t.params.get("budget")
    what = ("transferred config" if budget is None else
            f"budget {budget}, {record.searched_style}, {t.params.get(depth_param(budget))} layers")
    name = f"last {MONITOR}" if t.state == TrialState.PRUNED else OBJECTIVE
    value = f"{name} {t.value:.4f}" if t.value is not None else record.why_failed or ""
    size = f", {record.params_count:,} params" if record.params_count else ""
    line = f"trial {t.number} {t.state.name} {value} ({what}{size}, {record.epochs} epochs)"
    if record.evidence is not None:
        evidence = evidence_line(record.evidence, record.best_baseline, one_of="the study's trials")
        line += f"\n  {evidence}"
    return line
