"""Studies run in-process on the embedded data with tiny budgets: real Optuna journal storage, real training,
real MLflow (the temp sqlite store of conftest)."""

import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from conventions.errors import UserError
from datamodules.prepared import prepare
from hpo import parent
from hpo.convergence import Convergence
from hpo.recovery import fail_stale_trials
from hpo.settings import StudySettings
from hpo.storage import open_storage, study_exists
from hpo.study import run_study
from hpo.study_record import StudyRecord, StudyWriter
from hpo.trial_record import TrialRecord
from models import baselines
from models.intervals import rank_auroc, selection_null
from training.train import EVIDENCE, OBJECTIVE

BUDGETS = ["20k", "50k"]
F = 20  # features of tier a20


class PruneTrials(optuna.pruners.BasePruner):
    """Prunes the given trial numbers at their first report: a deterministic pruner."""

    def __init__(self, numbers):
        self.numbers = set(numbers)

    def prune(self, study, trial):
        return trial.number in self.numbers


def data(cfg):
    return prepare(cfg.data)


def all_runs():
    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def load(name):
    return optuna.load_study(study_name=name, storage=open_storage(None)[0])


def test_trials_nest_under_one_parent_with_states_tags_and_the_best(tiny_config):
    # the transferred config (trial 0) has lr=1e30 and no gradient clipping: its loss turns non-finite
    base = tiny_config.override({"train.lr": 1e30, "train.grad_clip": 0.0})
    settings = StudySettings(base=base, study_name="s", trials=4, budgets=BUDGETS, transfer="bad.json")
    out = run_study(settings, data(tiny_config), pruner=PruneTrials({2}))
    study = load("s")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.COMPLETE]
    assert out.ran == 4 and out.stop_reason == "done: the study holds 4 trials"

    runs = all_runs()
    (study_run,) = [r for r in runs if r.data.tags["kind"] == "study"]
    children = {int(r.data.tags["trial_number"]): r for r in runs if r.data.tags["kind"] == "trial"}
    assert len(runs) == 5 and sorted(children) == [0, 1, 2, 3]
    assert study_run.info.run_id == out.parent_run_id == StudyRecord.of(study).mlflow_parent_run_id
    assert study_run.info.status == "FINISHED"
    client = MlflowClient()
    for number, run in children.items():
        tags, trial = run.data.tags, trials[number]
        assert tags["mlflow.parentRunId"] == out.parent_run_id
        assert tags["trial_state"] == {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAIL"}[trial.state.name]
        assert run.info.status == ("FAILED" if trial.state == TrialState.FAIL else "FINISHED")
        assert TrialRecord.of(trial).mlflow_run_id == run.info.run_id
        if number == 0:
            assert (tags["budget"], tags["style"], tags["forced"]) == ("20k", "transferred", "false")  # it fits 20k
            assert "non-finite" in tags["error"] and tags["transferred_from"] == "bad.json"
            continue
        assert tags["budget"] == trial.params["budget"] and tags["style"] == TrialRecord.of(trial).style == "searched"
        assert tags["forced"] == "false"
        assert not client.list_artifacts(run.info.run_id, "checkpoints")  # trials keep no checkpoint
        # the params are the flattened RunConfig plus the exact count the budget solver promised
        assert run.data.params["params.count"] == str(TrialRecord.of(trial).params_count)
        assert int(run.data.params["params.count"]) <= 50_000
        assert float(run.data.params["train.lr"]) == pytest.approx(trial.params["lr"])
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val/auroc")]
        assert epochs == ([0] if number == 2 else [0, 1])  # the pruned trial stopped after its first epoch

    best = study.best_trial
    assert study_run.data.metrics[OBJECTIVE] == best.value == out.best.value
    assert study_run.data.metrics["best/val/auroc"] == TrialRecord.of(best).evidence["best/val/auroc"]
    assert study_run.data.tags["best_trial"] == str(best.number)
    assert study_run.data.tags["best_run_id"] == children[best.number].info.run_id
    assert study_run.data.tags["best.budget"] == best.params["budget"]
    assert study_run.data.metrics["trials/complete"] == 2
    assert study_run.data.metrics["trials/pruned"] == 1 and study_run.data.metrics["trials/fail"] == 1
    assert study_run.data.tags["storage"] == "optuna.journal" and study_run.data.tags["stop_reason"].startswith("done")
    artifacts = {a.path for a in client.list_artifacts(out.parent_run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/best_val_auroc_per_budget.png"} <= artifacts
    assert any(a.path == "best_config.json" for a in client.list_artifacts(out.parent_run_id))
    # the selection null: the best of as many random scorers as the completed trials had epochs, on the labels
    # that selected, the scorers as smooth as the train labels' dependence says
    prepared = data(tiny_config)
    k = sum(TrialRecord.of(t).epochs for t in load("s").trials if t.state == TrialState.COMPLETE)
    null = selection_null(prepared.labels("val_select"), k, horizon=1, seed=2, history=prepared.labels("train"))
    assert null != pytest.approx(selection_null(prepared.labels("val_select"), k, horizon=1, seed=2))
    assert study_run.data.metrics["selection/null_auroc_p95"] == pytest.approx(null) == out.null_p95
    assert study_run.data.metrics["selection/null_evaluations"] == k
    assert study_run.data.tags["selection.null_method"] == "epoch_evaluations_upper_bound"
    assert 0.5 < null < 1

    # resuming with settings that are not searched changed: one error naming each difference, nothing run
    changed = base.override({"data.horizon": 5, "data.threshold": 0.02, "train.max_epochs": 3})
    journal = Path("optuna.journal").read_bytes()
    with pytest.raises(UserError, match="created with other settings") as err:
        run_study(StudySettings(base=changed, study_name="s", trials=5, budgets=BUDGETS), data(changed))
    for what in ("data.horizon: 1 in the study, 5 now", "data.threshold: 0.01 in the study, 0.02 now",
                 "train.max_epochs: 2 in the study, 3 now", "data.fingerprint"):
        assert what in str(err.value)
    assert len(load("s").trials) == 4 and len(all_runs()) == 5
    assert Path("optuna.journal").read_bytes() == journal  # not a line appended


@pytest.mark.slow  # about 25 s on 2 cores (a study on data with scrambled report labels); CI runs it (-m slow)
def test_trials_are_selected_on_val_select_and_reported_on_val_report(tiny_config, tmp_path):
    """A trial's value is its checkpoint's monitored AUROC on val_select, not the val_report number it
    reports; the best trial is the argmax of those values and the selection null is simulated on the
    val_select labels."""
    out = run_study(StudySettings(base=tiny_config, study_name="v", trials=3, budgets=BUDGETS), data(tiny_config))
    trials = load("v").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    client = MlflowClient()
    for t in trials:
        run_id = TrialRecord.of(t).mlflow_run_id
        m = client.get_run(run_id).data.metrics
        history = {x.step: x.value for x in client.get_metric_history(run_id, "val/auroc")}
        assert t.value == m[OBJECTIVE] == history[int(m["best/epoch"])]  # the checkpoint's monitored value
        assert t.intermediate_values == history  # what pruning read, epoch by epoch
        frame = pd.read_parquet(client.download_artifacts(run_id, "predictions/val.parquet", str(tmp_path)))
        select = frame[frame["part"] == "select"]
        assert t.value == pytest.approx(rank_auroc(select["label"].to_numpy(), select["probability"].to_numpy()),
                                        abs=1e-5)
        assert t.value != pytest.approx(m["best/val/auroc"], abs=1e-5)
    best = max(trials, key=lambda t: t.value)
    study_run = client.get_run(out.parent_run_id)
    assert out.best.number == best.number and study_run.data.tags["best_trial"] == str(best.number)
    assert study_run.data.metrics[OBJECTIVE] == best.value
    reported = client.get_run(TrialRecord.of(best).mlflow_run_id).data.metrics["best/val/auroc"]
    assert study_run.data.metrics["best/val/auroc"] == reported
    prepared = data(tiny_config)
    train = prepared.labels("train")
    k = sum(TrialRecord.of(t).epochs for t in trials)
    assert out.null_p95 == pytest.approx(selection_null(prepared.labels("val_select"), k, horizon=1, seed=3,
                                                        history=train))
    assert out.null_p95 != pytest.approx(selection_null(prepared.labels("val_report"), k, horizon=1, seed=3,
                                                        history=train))


def test_a_study_that_selected_on_val_report_is_not_resumed(tiny_config):
    """A study whose definition records no objective selected its trials on `best/val/auroc`: new values
    must not mix with its values, nor its budgets choose phase 2's."""
    storage, _ = open_storage(None)
    old = optuna.create_study(storage=storage, study_name="old", direction="maximize")
    StudyWriter(old).defined({"budgets": "20k,50k", "phase": "1"})
    StudyWriter(old).parent(parent.create_parent("old", {}, {}))
    dist = {"budget": CategoricalDistribution(BUDGETS)}
    for budget in BUDGETS:
        old.add_trial(create_trial(value=0.6, params={"budget": budget}, distributions=dist))
    message = ("study 'old' selected its trials on best/val/auroc, which is also what it reports; trials are now "
               "selected on best/val_select/auroc (val_select) and their values do not compare: start a new study "
               "(another --study-name)")
    for supplementary in (False, True):
        settings = StudySettings(base=tiny_config, study_name="old", trials=3, budgets=BUDGETS,
                                 supplementary=supplementary)
        with pytest.raises(UserError) as err:
            run_study(settings, data(tiny_config))
        assert str(err.value) == message
    assert len(load("old").trials) == 2 and not study_exists(storage, "old-phase2")


def test_a_study_judged_against_another_baseline_set_is_not_resumed(tiny_config):
    """The baseline set (names and version) is part of a study's definition; a study made before it was
    recorded judged its trials against the first set (best baseline chosen on val_report)."""
    storage, _ = open_storage(None)
    for name, recorded in (("before", None), ("other", "majority@v9")):
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
        StudyWriter(study).defined({"objective": OBJECTIVE} | ({"baselines": recorded} if recorded else {}))
        StudyWriter(study).parent(parent.create_parent(name, {}, {}))
        settings = StudySettings(base=tiny_config, study_name=name, trials=1, budgets=["20k"])
        with pytest.raises(UserError, match=f"baselines: {recorded or baselines.LEGACY_SET} in the study, "
                                            f"{baselines.SET} now"):
            run_study(settings, data(tiny_config))
        assert not load(name).trials
    out = run_study(StudySettings(base=tiny_config.override({"train.max_epochs": 1}), study_name="new", trials=1,
                                  budgets=["20k"]), data(tiny_config), echo=lambda line: None)
    definition = StudyRecord.of(load("new")).definition
    seen = data(tiny_config).seen
    assert definition["baselines"] == baselines.SET == "majority,volatility,logistic,boosting@v2"
    assert (definition["data.seen_fingerprint"], definition["data.seen_until"]) == (seen.fingerprint, seen.until)
    assert MlflowClient().get_run(out.parent_run_id).data.tags["data.seen_fingerprint"] == seen.fingerprint


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_a_transferred_config_larger_than_every_budget_is_shown_but_never_the_best(tiny_config, tmp_path):
    big = tiny_config.override({"model.hidden_size": 128, "model.n_heads": 4})
    settings = StudySettings(base=big, study_name="t", trials=2, budgets=["20k"], transfer="big.json")
    out = run_study(settings, data(big))
    first, second = load("t").trials
    assert TrialRecord.of(first).outside_budgets and TrialRecord.of(first).params_count > 20_000
    assert first.state == second.state == TrialState.COMPLETE
    assert out.best.number == 1
    assert MlflowClient().get_run(out.parent_run_id).data.tags["best_trial"] == "1"


class InterruptAt:
    """An `echo` that records the lines and raises Ctrl-C on the first one containing `needle`."""

    def __init__(self, needle):
        self.needle, self.lines = needle, []

    def __call__(self, line):
        self.lines.append(line)
        if self.needle and self.needle in line:
            raise KeyboardInterrupt


class JudgedDeadAt(InterruptAt):
    """An `echo` that, at the first line containing `needle`, does what another worker does to a trial whose
    heartbeat it finds too old (a worker stalled past the grace, or cut off from the storage): marks every
    RUNNING trial FAIL with `fail_stale_trials` on the same storage (grace -1: any heartbeat is too old)."""

    def __call__(self, line):
        self.lines.append(line)
        if self.needle and self.needle in line:
            self.needle = None
            storage = open_storage(None)[0]
            self.failed = fail_stale_trials(optuna.load_study(study_name="d", storage=storage), storage, grace=-1.0)


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_a_live_trial_judged_dead_by_another_worker_is_discarded_and_the_study_goes_on(tiny_config):
    """Its worker learns it at the next write to the trial (the epoch's report), stops training it, keeps the
    other worker's verdict and runs the trial that replaces it."""
    echo = JudgedDeadAt("trial 1 epoch 1/")
    out = run_study(StudySettings(base=tiny_config, study_name="d", trials=3, budgets=BUDGETS), data(tiny_config),
                    echo=echo)
    assert echo.failed == [1]
    trials = load("d").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert TrialRecord.of(trials[1]).failed_reason.startswith("stale: no heartbeat for")
    assert TrialRecord.of(trials[1]).error is None and 1 not in trials[1].intermediate_values  # stopped at epoch 2
    assert out.ran == 4 and out.stop_reason == "done: the study holds 3 trials"
    assert any(line.startswith("trial 1 FAIL stale: no heartbeat for") for line in echo.lines), echo.lines
    runs = {r.data.tags["trial_number"]: r for r in all_runs() if r.data.tags["kind"] == "trial"}
    assert runs["1"].info.status == "FAILED" and runs["1"].data.tags["trial_state"] == "FAIL"
    assert runs["1"].data.tags["error"].endswith("another worker failed trial 1, judging its worker dead: its result "
                                                 "is discarded")
    assert {runs[n].info.status for n in "023"} == {"FINISHED"}


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_resume_requeues_an_interrupted_forced_trial_and_stops_on_convergence(tiny_config):
    settings = StudySettings(base=tiny_config, study_name="r", trials=6, budgets=["20k"], forced_extremes=True)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during trial 2's first epoch
        run_study(settings, data(tiny_config), pruner=PruneTrials(range(100)), echo=InterruptAt("trial 2 epoch 1/"))
    study = load("r")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.WAITING] * 3
    assert TrialRecord.of(study.trials[2]).failed_reason == "interrupted"
    first_parent = StudyRecord.of(study).mlflow_parent_run_id
    assert MlflowClient().get_run(first_parent).info.status == "KILLED"
    kept = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}

    echo = InterruptAt(None)
    # forced trials: never pruned
    second = run_study(settings, data(tiny_config), pruner=PruneTrials(range(100)), echo=echo)
    assert second.parent_run_id == first_parent and second.ran == 4
    assert "forced trials 2 did not finish: enqueued again" in echo.lines
    assert any("[6/6 trials," in line for line in echo.lines)  # progress after each trial
    trials = load("r").trials
    assert len(trials) == 7 and {t.number: t.value for t in trials if t.number in kept} == kept
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and all(TrialRecord.of(t).forced for t in trials)
    # the 6 forced configs (3 styles x 2 extremes), each completed exactly once
    cells = sorted((TrialRecord.of(t).style, t.params["dropout"]) for t in complete)
    assert cells == sorted((s, d) for s in ("shallow-wide", "balanced", "deep-narrow") for d in (0.5, 0.0))
    runs = all_runs()
    assert len([r for r in runs if r.data.tags["kind"] == "trial"]) == 7
    assert {r.data.tags["trial_state"] for r in runs if r.data.tags["kind"] == "trial"} == {"COMPLETE", "FAIL"}

    with pytest.raises(UserError, match="--trials 5 is smaller than the 6 configs that run first"):
        run_study(StudySettings(base=tiny_config, study_name="r", trials=5, budgets=["20k"], forced_extremes=True),
                  data(tiny_config))

    # finished trials gained less than 0.5 over the last 2: converged before running anything
    settings.trials, settings.convergence = 10, Convergence(patience=2, threshold=0.5)
    third = run_study(settings, data(tiny_config))
    assert third.ran == 0 and third.stop_reason.startswith("converged")
    study_run = MlflowClient().get_run(first_parent)
    assert study_run.data.tags["stop_reason"] == third.stop_reason and study_run.info.status == "FINISHED"

    # phase 2 needs completed trials in two budgets: this study has them in one; nothing is written
    with pytest.raises(UserError, match="at least 2 budgets"):
        run_study(StudySettings(base=tiny_config, study_name="r", trials=2, budgets=BUDGETS, supplementary=True),
                  data(tiny_config))
    assert not study_exists(open_storage(None)[0], "r-phase2") and len(all_runs()) == 8
    with pytest.raises(UserError, match="no phase-1 study 'other'"):
        run_study(StudySettings(base=tiny_config, study_name="other", trials=2, budgets=BUDGETS,
                                supplementary=True), data(tiny_config))


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_phase2_runs_tpe_on_the_two_best_budgets_and_links_phase1(tiny_config):
    storage, _ = open_storage(None)
    phase1 = optuna.create_study(storage=storage, study_name="p", direction="maximize")
    StudyWriter(phase1).defined({"objective": OBJECTIVE})
    dist = {"budget": CategoricalDistribution(["10k", "20k", "50k"])}
    for budget, value in [("10k", 0.70), ("20k", 0.55), ("50k", 0.60), ("20k", 0.58)]:
        phase1.add_trial(create_trial(value=value, params={"budget": budget}, distributions=dist))
    phase1_run = parent.create_parent("p", {"phase": "1"}, {})
    StudyWriter(phase1).parent(phase1_run)

    settings = StudySettings(base=tiny_config, study_name="p", trials=1, budgets=["750k"], supplementary=True)
    out = run_study(settings, data(tiny_config))
    assert out.study_name == "p-phase2"
    study = load("p-phase2")
    assert StudyRecord.of(study).definition["budgets"] == "10k,50k"
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.params["budget"] in ("10k", "50k")
    run = MlflowClient().get_run(out.parent_run_id)
    assert run.data.tags["kind"] == "study" and run.data.tags["phase"] == "2"
    assert run.data.tags["phase1_run_id"] == phase1_run and run.data.tags["phase1_study"] == "p"
    assert phase1_run in run.data.tags["mlflow.note.content"]


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_the_run_of_mlflow_run_becomes_the_parent_then_a_session_pointer(tiny_config, monkeypatch):
    client = MlflowClient()
    experiment = client.create_experiment("launched")  # `mlflow run` chooses the experiment
    launcher = client.create_run(experiment).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    settings = StudySettings(base=tiny_config, study_name="m", trials=1, budgets=["20k"])
    out = run_study(settings, data(tiny_config))
    assert out.parent_run_id == launcher and "MLFLOW_RUN_ID" not in os.environ
    run = client.get_run(launcher)
    assert run.data.tags["kind"] == "study" and run.info.run_name == "m"

    second = client.create_run(experiment).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", second)
    settings.trials = 2
    assert run_study(settings, data(tiny_config)).parent_run_id == launcher
    tags = client.get_run(second).data.tags
    assert tags["kind"] == "study-session" and tags["mlflow.parentRunId"] == launcher
    trials = client.search_runs([experiment], "tags.kind = 'trial'")
    assert len(trials) == 2 and {r.data.tags["mlflow.parentRunId"] for r in trials} == {launcher}


def test_the_parent_keeps_no_tag_of_an_earlier_best():
    """A 20k trial is the best, then a 50k one: `best.n_layers_20k` goes, the new best's params stay."""
    from optuna.distributions import IntDistribution

    study = optuna.create_study(storage=open_storage(None)[0], study_name="tags", direction="maximize")
    run_id = parent.create_parent("tags", {}, {})
    for value, budget in ((0.6, "20k"), (0.7, "50k")):
        study.add_trial(create_trial(
            value=value, params={"budget": budget, f"n_layers_{budget}": 8 if budget == "20k" else 2},
            distributions={"budget": CategoricalDistribution(BUDGETS), f"n_layers_{budget}": IntDistribution(1, 8)},
            user_attrs=TrialRecord(evidence={"best/val/auroc": value}, budget=budget).attrs()))
        parent.summarise(run_id, study)
    tags = MlflowClient().get_run(run_id).data.tags
    assert {k: v for k, v in tags.items() if k.startswith("best.")} == {"best.budget": "50k", "best.n_layers_50k": "2"}
    assert tags["best_trial"] == "1"


def test_the_selection_null_grows_with_the_epochs_each_trial_chose_among():
    """A trial's value is the best of its epochs on val_select: the null draws one random scorer per epoch
    evaluation, so the same trials with more epochs face a higher null."""
    labels = (np.arange(300) % 3 == 0).astype(float)
    nulls = []
    for epochs in (1, 6):
        study = optuna.create_study(storage=open_storage(None)[0], study_name=f"e{epochs}", direction="maximize")
        run_id = parent.create_parent(f"e{epochs}", {}, {})
        for _ in range(4):
            study.add_trial(create_trial(value=0.55, params={"budget": "20k"},
                                         distributions={"budget": CategoricalDistribution(BUDGETS)},
                                         user_attrs=TrialRecord(epochs=epochs, budget="20k", best_baseline="majority",
                                                                evidence=dict.fromkeys(EVIDENCE, 0.55)).attrs()))
        nulls.append(parent.log_report(run_id, study, [labels], 1, [labels]))
        assert MlflowClient().get_run(run_id).data.metrics["selection/null_evaluations"] == 4 * epochs
        assert nulls[-1] == pytest.approx(selection_null(labels, 4 * epochs, horizon=1, seed=4, history=labels))
    assert nulls[1] > nulls[0]
