"""An Optuna study whose trials are nested MLflow runs under one study parent run.

A session: open the storage, create the study or load it (`load_if_exists` semantics, so rerunning a
command resumes it), recover trials whose worker died, then run trials until the study holds `trials`
of them (stale-failed ones aside), or until convergence. Several workers may run the same command at once:
creating the Optuna study is atomic, so exactly one of them creates it, enqueues the forced configs and
creates the MLflow parent; the others wait for the parent's id to appear in the study's user attributes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from hpo import parent, phase2
from hpo.budgets import SHAPE_KEYS, STYLES, Shape, check_budgets, forced_configs, solve
from hpo.convergence import Convergence
from hpo.pruning import PruningCallback
from hpo.recovery import FAILED_REASON, Heartbeat, close_orphan_runs, fail_stale_trials
from hpo.sampling import TrialSeededTPE
from hpo.space import SearchSpace
from hpo.storage import open_storage
from training.config import RunConfig
from training.train import train

PARENT_WAIT_S = 30.0
# what a reader needs beside a trial's val AUROC: its interval, the volatility baseline, their difference
EVIDENCE = ("best/val/auroc_ci_low", "best/val/auroc_ci_high", "baseline/volatility/val/auroc",
            "best/val/auroc_vs_volatility_ci_low", "best/val/auroc_vs_volatility_ci_high")  # how long a worker waits for the study's creator to create the MLflow parent


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

    def __post_init__(self):
        if self.trials < 1:
            raise ValueError(f"--trials must be >= 1, got {self.trials}")


@dataclass
class Outcome:
    study_name: str
    parent_run_id: str
    storage: str  # password masked
    ran: int  # trials finished in this session
    stop_reason: str
    best: FrozenTrial | None
    counts: dict[str, int] = field(default_factory=dict)


def fixed_hp(cfg: RunConfig) -> dict[str, object]:
    """The model fields that a (budget, style) shape does not decide."""
    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in ("name", *SHAPE_KEYS)}


def shapes_of(cfg: RunConfig, budgets: list[str], n_features: int) -> dict[tuple[str, str], Shape | None]:
    return check_budgets(cfg.model.name, budgets, STYLES, n_features, cfg.data.input_size, **fixed_hp(cfg))


def run_study(
    settings: StudySettings, n_features: int, *, pruner: optuna.pruners.BasePruner | None = None,
    echo: Callable[[str], None] = print,
) -> Outcome:
    session = _open(settings, n_features, pruner, echo)
    study, parent_id = session.study, session.parent_id
    parent.reopen(parent_id)
    objective = Objective(settings.base, session.space, n_features, study.study_name, parent_id,
                          parent.experiment_of(parent_id))
    ran, status, reason = 0, "FAILED", "error"

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        parent.summarise(parent_id, study)
        echo(_trial_line(trial))

    try:
        while True:
            _recover(study, session.storage, parent_id, echo)
            reason = settings.convergence.check(study) if settings.convergence else None
            if reason is None and _count(study) >= settings.trials:
                reason = f"done: the study holds {settings.trials} trials"
            if reason is not None:
                break
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[after_trial])
            ran += 1
        status = "FINISHED"
    except KeyboardInterrupt:
        status, reason = "KILLED", "interrupted"
        raise
    finally:
        parent.summarise(parent_id, study)
        parent.log_report(parent_id, study)
        mlflow.MlflowClient().set_tag(parent_id, "stop_reason", reason)
        parent.close(parent_id, study, status)
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    best = study.best_trial if counts[TrialState.COMPLETE.name] else None
    return Outcome(study.study_name, parent_id, session.shown, ran, reason, best,
                   {k: v for k, v in counts.items() if v})


@dataclass
class _Session:
    study: optuna.Study
    storage: BaseStorage
    shown: str  # the storage, password masked
    space: SearchSpace
    parent_id: str


def _open(settings: StudySettings, n_features: int, pruner: optuna.pruners.BasePruner | None,
          echo: Callable[[str], None]) -> _Session:
    """Validate, then create or load the study, enqueue what it needs and find (or create) its parent run."""
    base, launcher = settings.base, parent.launcher_run()
    if settings.supplementary:
        plan = phase2.plan(settings.storage, settings.study_name)
        storage, shown, name, budgets = plan.storage, plan.shown, plan.name, plan.budgets
        link = phase2.phase1_link(plan.phase1)
        shapes = shapes_of(base, budgets, n_features)
    else:
        shapes = shapes_of(base, settings.budgets, n_features)  # bad budgets fail before anything is written
        storage, shown = open_storage(settings.storage)
        name, budgets, link = settings.study_name, settings.budgets, {}
    space = SearchSpace.build(base, budgets, STYLES, set(settings.pinned))
    definition = {"model": base.model.name, "tier": base.data.tier, "input_size": base.data.input_size,
                  "budgets": budgets, "phase": 2 if settings.supplementary else 1}

    pruner = pruner or (_median_pruner(base.train.max_epochs) if settings.pruning else optuna.pruners.NopPruner())
    study, created = _create_or_load(storage, name, TrialSeededTPE(base.train.seed), pruner)
    parent_id = study.user_attrs.get(parent.PARENT_ATTR) or (None if created else _wait_for_parent(study))
    if parent_id is not None:
        _check_definition(study, definition)
    else:  # this worker created the study (or its creator died before creating the parent)
        study.set_user_attr("definition", definition)
    _enqueue(study, settings, space, shapes)
    if parent_id is None:
        parent_id = parent.create_parent(name, _parent_tags(base, budgets, shown, link), _parent_params(base, space),
                                         adopt=launcher)
        study.set_user_attr(parent.PARENT_ATTR, parent_id)
        echo(f"study {name!r} created in {shown}; MLflow parent run {parent_id}")
    else:
        if launcher is not None:
            parent.mark_session(launcher, parent_id, name)
        echo(f"study {name!r} loaded from {shown} ({_count(study)} trials so far); MLflow parent run {parent_id}")
    return _Session(study, storage, shown, space, parent_id)


@dataclass
class Objective:
    """One trial: a nested MLflow run (tags first), the config from the trial's params, `train` inside it.

    The run ends FINISHED with `trial_state=COMPLETE` or `PRUNED`, FAILED with `trial_state=FAIL` and an
    `error` tag on any exception (the study goes on: Optuna marks the trial FAIL), KILLED on Ctrl-C."""

    base: RunConfig
    space: SearchSpace
    n_features: int
    study_name: str
    parent_run_id: str
    experiment_id: str

    def __call__(self, trial: optuna.Trial) -> float:
        forced = bool(trial.user_attrs.get("forced"))
        tags = {"kind": "trial", "study_name": self.study_name, "trial_number": str(trial.number),
                "forced": str(forced).lower(), "trial_state": "RUNNING"}
        if "transferred" in trial.user_attrs:
            tags["transferred_from"] = trial.user_attrs["transferred"]
        with Heartbeat(trial):
            run = mlflow.start_run(experiment_id=self.experiment_id, run_name=f"{self.study_name}-{trial.number}",
                                   parent_run_id=self.parent_run_id, tags=tags)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            state, status = "FAIL", "FAILED"
            pruning = PruningCallback(trial)
            try:
                cfg = self.config(trial)
                result = train(cfg, callbacks=(pruning,), progress=False)
                if not math.isfinite(result.val_auroc):
                    raise ValueError(f"val AUROC is {result.val_auroc} (one class in the val split?)")
                trial.set_user_attr("epochs", result.epochs)
                trial.set_user_attr("evidence", {k: result.metrics[k] for k in EVIDENCE})
                state, status = "COMPLETE", "FINISHED"
                return result.val_auroc
            except optuna.TrialPruned:
                state, status = "PRUNED", "FINISHED"
                trial.set_user_attr("epochs", pruning.pruned_at[0] + 1)
                raise
            except Exception as err:
                error = f"{type(err).__name__}: {err}"[:4000]
                mlflow.set_tag("error", error)
                trial.set_user_attr("error", error)
                raise
            except (KeyboardInterrupt, SystemExit) as err:  # Lightning turns Ctrl-C in `fit` into sys.exit(1)
                status = "KILLED"
                trial.set_user_attr(FAILED_REASON, "interrupted")  # not counted: a rerun runs it again
                raise KeyboardInterrupt from err
            finally:
                mlflow.set_tag("trial_state", state)
                mlflow.end_run(status)

    def config(self, trial: optuna.Trial) -> RunConfig:
        """The trial's config; its budget and style are tagged before the shape is solved (which may fail)."""
        transferred = "transferred" in trial.user_attrs
        values = self.space.suggest(trial, shape=not transferred)
        budget, style = ("none", "transferred") if transferred else (values["budget"], values["style"])
        mlflow.set_tags({"budget": budget, "style": style})
        trial.set_user_attr("budget", budget)
        trial.set_user_attr("style", style)
        cfg = self.space.apply(self.base, values)
        if transferred:
            return cfg
        shape = solve(cfg.model.name, budget, style, self.n_features, cfg.data.input_size, **fixed_hp(cfg))
        trial.set_user_attr("params_count", shape.count)
        return cfg.override(shape.hp)


def _median_pruner(max_epochs: int) -> optuna.pruners.MedianPruner:
    """Prune a trial below the median of earlier trials at the same epoch, once 5 trials finished; never in
    its first 3 epochs (a third of them when max-epochs < 9, so that short studies can prune too)."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(3, max(1, max_epochs // 3)))


def _recover(study: optuna.Study, storage: BaseStorage, parent_id: str, echo: Callable[[str], None]) -> None:
    """Fail the trials of dead workers and end their MLflow runs; before each trial (one query each)."""
    stale = fail_stale_trials(study, storage)
    if stale:
        echo(f"trials {', '.join(map(str, stale))} were left RUNNING by a dead worker: marked FAIL")
    close_orphan_runs(study, parent_id)


def _create_or_load(storage: BaseStorage, name: str, sampler, pruner) -> tuple[optuna.Study, bool]:
    try:
        return optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                   pruner=pruner), True
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise ValueError(f"study {name!r} exists but does not maximise: not an HPO study of this project") from None
        return study, False


def _wait_for_parent(study: optuna.Study) -> str | None:
    deadline = time.monotonic() + PARENT_WAIT_S
    while time.monotonic() < deadline:
        if parent.PARENT_ATTR in study.user_attrs:
            return study.user_attrs[parent.PARENT_ATTR]
        time.sleep(0.5)
    return None


def _check_definition(study: optuna.Study, definition: dict) -> None:
    stored = study.user_attrs.get("definition", definition)
    diff = {k: (stored.get(k), v) for k, v in definition.items() if stored.get(k) != v}
    if diff:
        what = "; ".join(f"{k}: {old} in the study, {new} now" for k, (old, new) in diff.items())
        raise ValueError(f"study {study.study_name!r} was created with other settings ({what}); rerun it with "
                         "its own settings or choose another --study-name")


def _enqueue(study: optuna.Study, settings: StudySettings, space: SearchSpace, shapes) -> None:
    """The transferred config first, then the forced configs; each set once per study (a study user
    attribute records it), so resuming never enqueues them twice."""
    done = set(study.user_attrs.get("enqueued", []))
    new = []
    base_values = space.values_of(settings.base)
    if settings.transfer and f"transfer:{settings.transfer}" not in done:
        study.enqueue_trial(base_values, user_attrs={"transferred": settings.transfer}, skip_if_exists=True)
        new.append(f"transfer:{settings.transfer}")
    if settings.forced_extremes and "forced" not in done:
        for forced in forced_configs(shapes, base_values):
            study.enqueue_trial(forced.params, user_attrs={"forced": True, "regularisation": forced.regularisation.name},
                                skip_if_exists=True)
        new.append("forced")
    if new:
        study.set_user_attr("enqueued", sorted(done | set(new)))


def _count(study: optuna.Study) -> int:
    """Trials that count towards `--trials`: all but WAITING ones and those a dead worker left behind."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.WAITING and FAILED_REASON not in t.user_attrs)


def _parent_tags(base: RunConfig, budgets: list[str], shown: str, link: dict[str, str]) -> dict[str, str]:
    tags = {"model": base.model.name, "tier": base.data.tier, "input_size": str(base.data.input_size),
            "budgets": ",".join(budgets), "storage": shown, "phase": "2" if link else "1", **link}
    note = f"Optuna study in `{shown}`; rerun the same `python -m hpo` command to resume it."
    if link.get("phase1_run_id"):
        run = link["phase1_run_id"]
        note += f" Phase 2 of [{link['phase1_study']}](#/experiments/{parent.experiment_of(run)}/runs/{run})."
    return {**tags, "mlflow.note.content": note}


def _parent_params(base: RunConfig, space: SearchSpace) -> dict[str, object]:
    return {"study.sampler": "TPE (multivariate, constant liar), reseeded per trial", "study.seed": base.train.seed,
            "study.styles": ",".join(space.styles), "study.searched": ",".join(space.dims)}


def _trial_line(t: FrozenTrial) -> str:
    what = f"budget {t.params.get('budget', '-')}, {t.params.get('style', 'transferred config')}"
    last = "last " if t.state == TrialState.PRUNED else ""
    value = (f"{last}val/auroc {t.value:.4f}" if t.value is not None
             else t.user_attrs.get("error") or t.user_attrs.get(FAILED_REASON, ""))
    count = t.user_attrs.get("params_count")
    size = f", {count:,} params" if count else ""
    return f"trial {t.number} {t.state.name} {value} ({what}{size}, {t.user_attrs.get('epochs', 0)} epochs)"
