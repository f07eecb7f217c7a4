"""Studies over walk-forward folds (`data.folds` K > 1): a trial trains one nested run per fold inside its own
run, its value is the mean of the folds' val_select AUROCs, it is pruned fold by fold, the selection null and
the audit work fold by fold, and nothing a trial is chosen by reads a report sample."""

from dataclasses import replace

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conventions.cli import run_main
from conventions.errors import UserError
from datamodules.prepared import prepare
from hpo.__main__ import main
from hpo.audit.checks import audit
from hpo.audit.trials import collect
from hpo.settings import StudySettings
from hpo.storage import open_storage
from hpo.study import run_study
from hpo.study_record import StudyWriter
from hpo.trial_record import TrialRecord
from models.intervals import fold_selection_null, rank_auroc, selection_null
from training.promote import main as promote
from training.train import OBJECTIVE, REPORT, SELECT, val_predictions
from training.walkforward import PLOT

BUDGETS = ["20k", "50k"]


class PruneFrom(optuna.pruners.BasePruner):
    """Prunes the given trial numbers at their first report at or after `step`: a deterministic pruner."""

    def __init__(self, numbers, step):
        self.numbers, self.step = set(numbers), step

    def prune(self, study, trial):
        return trial.number in self.numbers and max(trial.intermediate_values, default=-1) >= self.step


def load(name):
    return optuna.load_study(study_name=name, storage=open_storage(None)[0])


def runs_of(experiment_runs, parent_id):
    return [r for r in experiment_runs if r.data.tags.get("mlflow.parentRunId") == parent_id]


def all_runs():
    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def scrambled(prepared, seed=0):
    """The same data with the labels of each fold's report part permuted as that fold sees them (its select
    part and train rows untouched; a later fold trains on an earlier fold's report rows, unscrambled)."""

    def scramble(view, k):
        y = view.y.copy()
        report = view.ends[REPORT]
        y[report] = np.random.default_rng(seed + k).permutation(y[report])
        return replace(view, y=y, baseline_scores={}, views={})

    last = len(prepared.folds) - 1
    out = scramble(prepared, last)  # the last fold's view is the data itself
    out.views.update({k: scramble(prepared.fold(k), k) for k in range(last)})
    return out


@pytest.fixture
def two_folds(tiny_config):
    return tiny_config.override({"data.folds": 2})


@pytest.mark.slow  # two 4-trial studies of 2 folds and a promotion: about 2 minutes on 2 cores
def test_a_walk_forward_study_selects_on_the_folds_select_parts_only(two_folds):
    prepared = prepare(two_folds.data)
    out = run_study(StudySettings(base=two_folds, study_name="wf", trials=4, budgets=BUDGETS), prepared,
                    pruner=PruneFrom({3}, two_folds.train.max_epochs))  # trial 3: pruned in its second fold
    study = load("wf")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert {t.params["budget"] for t in trials[:3]} == set(BUDGETS)
    runs = all_runs()
    client = MlflowClient()
    trial_runs = {int(r.data.tags["trial_number"]): r for r in runs if r.data.tags["kind"] == "trial"}
    for t in trials:
        run = trial_runs[t.number]
        folds = sorted(runs_of(runs, run.info.run_id), key=lambda r: int(r.data.tags["fold"]))
        assert [r.data.tags["fold"] for r in folds] == ["1", "2"]  # each fold a nested run of the trial's run
        assert all(r.info.status == "FINISHED" for r in folds) and run.info.status == "FINISHED"
        # every epoch of every fold is reported, fold k's at steps k * max_epochs + epoch
        steps = sorted(t.intermediate_values)
        fold_epochs = [len(client.get_metric_history(r.info.run_id, "val/auroc")) for r in folds]
        assert steps == [*range(fold_epochs[0]), *(two_folds.train.max_epochs + e for e in range(fold_epochs[1]))]
        assert TrialRecord.of(t).epochs == sum(fold_epochs)
        if t.state == TrialState.PRUNED:  # in its second fold, once that fold's warm-up epoch was over
            assert "Pruned at fold 2 epoch 2:" in run.data.tags["mlflow.note.content"] and steps[-1] == 3
            continue
        # the value: the mean of the folds' monitored AUROCs on their select parts, each fold's own run's
        assert t.value == pytest.approx(np.mean([r.data.metrics[OBJECTIVE] for r in folds]))
        assert TrialRecord.of(t).fold_epochs == fold_epochs
        frame = val_predictions(run.info.run_id)
        assert sorted(frame["fold"].unique()) == [1, 2]
        report = [frame[(frame["fold"] == k) & (frame["part"] == "report")] for k in (1, 2)]
        assert TrialRecord.of(t).evidence["best/val/auroc"] == pytest.approx(
            np.mean([rank_auroc(f["label"], f["probability"]) for f in report]))
    # the parent: the selection null fold by fold, and the best trial's per-fold plot
    study_run = client.get_run(out.parent_run_id)
    views = [prepared.fold(k) for k in (0, 1)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    ks = [sum(TrialRecord.of(t).fold_epochs[k] for t in complete) for k in (0, 1)]
    null = fold_selection_null([v.labels(SELECT) for v in views], ks, horizon=1, seed=len(complete),
                               histories=[v.labels("train") for v in views])
    assert study_run.data.metrics["selection/null_auroc_p95"] == pytest.approx(null) == out.null_p95
    assert study_run.data.metrics["selection/null_evaluations"] == sum(ks)
    assert PLOT in {a.path for a in client.list_artifacts(out.parent_run_id, "plots")}
    # the audit reads the same null and pairs budgets within folds
    data, _ = collect(study)
    report = audit(study, data, study_run.data.metrics)
    assert report.selection.null_p95 == pytest.approx(null) and report.selection.folds == 2
    assert report.overfit_gap.missing == [] and report.overfit_gap.trials  # the folds' mean train AUROC
    (pair,) = report.by_budget.pairs  # 20k against 50k, paired within folds on one FoldBootstrap
    reported = {t.number: TrialRecord.of(t).evidence["best/val/auroc"] for t in trials[:3]}
    assert pair.diff == pytest.approx(reported[pair.trial_a] - reported[pair.trial_b])  # the means over folds
    assert pair.ci_low < pair.ci_high and 0 <= pair.p_adjusted <= 1
    # a walk-forward trial's curves are its last fold's (the layout a promotion deploys)
    curves = {d.number: d.history["val/auroc"] for d in data}
    for t in trials:
        last = [r for r in runs_of(runs, trial_runs[t.number].info.run_id) if r.data.tags["fold"] == "2"][0]
        assert curves[t.number] == [m.value for m in sorted(client.get_metric_history(last.info.run_id, "val/auroc"),
                                                            key=lambda m: m.step)]

    # promotion of the study's best: its seed trains on the last fold, its record is the best trial's folds
    run_main(promote, ["--study", "wf", "--name", "wf-model", "--seeds", "1", "--quiet"])
    (promoted,) = [r for r in all_runs() if r.data.tags["kind"] == "promotion"]
    best_run = client.get_run(TrialRecord.of(out.best).mlflow_run_id)
    for key in ("best/val/auroc", "fold/1/val/auroc", "fold/2/val/auroc", "fold/2/baseline/best/val/auroc"):
        assert promoted.data.metrics[f"development/{key}"] == best_run.data.metrics[key]
    (seed,) = [r for r in all_runs() if r.data.tags.get("promotion_run_id") == promoted.info.run_id]
    assert seed.data.params["data.folds"] == "2"
    last = views[1].dates(SELECT).append(views[1].dates(REPORT))  # the last fold's val block, both parts
    assert val_predictions(seed.info.run_id).index.equals(last)
    version = client.get_model_version("wf-model", "1")
    assert version.tags["development.folds"] == "2" and version.tags["development"].startswith(
        "walk-forward evidence of ")

    # the probe: scrambling every report label changes what is reported, never what selects
    probe = run_study(StudySettings(base=two_folds, study_name="probe", trials=4, budgets=BUDGETS),
                      scrambled(prepared), pruner=PruneFrom({3}, two_folds.train.max_epochs))
    again = load("probe").get_trials()
    assert [(t.state, t.value, t.params) for t in again] == [(t.state, t.value, t.params) for t in trials]
    assert probe.best.number == out.best.number
    evidence = [TrialRecord.of(t).evidence["best/val/auroc"] for t in (trials[0], again[0])]
    assert evidence[0] != evidence[1]

    # resuming with another number of folds is refused, naming the setting
    with pytest.raises(UserError, match="data.folds: 2 in the study, 3 now"):
        run_study(StudySettings(base=two_folds.override({"data.folds": 3}), study_name="wf", trials=5,
                                budgets=BUDGETS), prepare(two_folds.override({"data.folds": 3}).data))
    assert len(load("wf").trials) == 4


def test_one_fold_selection_null_is_the_one_split_null():
    labels = (np.arange(200) % 3 == 0).astype(float)
    history = (np.arange(400) % 4 == 0).astype(float)
    assert fold_selection_null([labels], [7], horizon=2, seed=5, histories=[history]) == selection_null(
        labels, 7, horizon=2, seed=5, history=history)


@pytest.mark.parametrize("folds", ["0", "60"])
def test_a_study_with_folds_the_data_cannot_hold_writes_nothing(capsys, tmp_path, folds):
    with pytest.raises(SystemExit) as exit_:  # in tmp_path, the test's own store (conftest)
        run_main(main, ["--model", "itransformer", "--data-tier", "a20", "--input-size", "16", "--trials", "1",
                        "--horizon", "5", "--folds", folds])
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    if folds == "0":
        assert err == "error: folds must be an integer >= 1, got 0"
    else:
        assert err.startswith("error: --folds 60 is too many for the val span") and "that fits is" in err
    assert not (tmp_path / "optuna.journal").exists() and all_runs() == []  # no study, no run


def test_the_dry_run_says_what_a_trial_over_folds_trains(capsys):
    run_main(main, ["--data-tier", "a20", "--trials", "4", "--folds", "3", "--window", "rolling", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dry run of study 'itransformer-a20-L80-3folds'")
    assert ("each trial trains 3 models, one per walk-forward fold (rolling window); its value is the mean of "
            "their val_select AUROCs") in out
    assert all_runs() == []


def test_phase2_runs_with_phase1s_folds(tiny_config):
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from training.train import OBJECTIVE

    storage, _ = open_storage(None)
    phase1 = optuna.create_study(storage=storage, study_name="p", direction="maximize")
    StudyWriter(phase1).defined({"objective": OBJECTIVE, "data.folds": "2", "budgets": "10k,20k,50k",
                                        "phase": "1"})
    dist = {"budget": CategoricalDistribution(["10k", "20k", "50k"])}
    for budget, value in [("10k", 0.70), ("20k", 0.55), ("50k", 0.60)]:
        phase1.add_trial(create_trial(value=value, params={"budget": budget}, distributions=dist))
    settings = StudySettings(base=tiny_config, study_name="p", trials=1, budgets=["750k"], supplementary=True)
    with pytest.raises(UserError, match=r"phase 2 of 'p' must run with phase 1's settings \(data.folds: 2 in "
                                        r"phase 1, 1 now\)"):
        run_study(settings, prepare(tiny_config.data))
    assert optuna.get_all_study_names(storage) == ["p"] and all_runs() == []
