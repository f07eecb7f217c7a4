"""A study stops after `FAILURE_STREAK` trials in a row fail with the same error (a bug), instead of spending
its budget: real Optuna journal storage, real training, real MLflow (the temp sqlite store of conftest)."""

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conventions.cli import run_main
from datamodules.prepared import prepare
from hpo.settings import StudySettings
from hpo.storage import open_storage
from hpo.study import FAILURE_STREAK, run_study
from hpo.trial_record import TrialRecord


class Broken(optuna.pruners.BasePruner):
    """A bug in the code a trial runs: asked whether to prune after the first epoch, trial 0 raises one
    error and every later trial another, the same each time."""

    def prune(self, study, trial):
        raise RuntimeError("first bug" if trial.number == 0 else "the same bug")


def test_a_study_stops_after_repeated_identical_failures_with_one_error_line(tiny_config, capsys):
    cfg = tiny_config.override({"train.max_epochs": 1, "train.max_steps": 1})
    settings = StudySettings(base=cfg, study_name="bug", trials=8, budgets=["20k"])
    exit_code = None
    try:
        run_main(lambda: run_study(settings, prepare(cfg.data), pruner=Broken(), echo=lambda line: None))
    except SystemExit as exit_:
        exit_code = exit_.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_code == 2 and FAILURE_STREAK == 3
    # a different error first: the streak starts at trial 1
    assert lines[-1] == ("error: study 'bug' stopped: trials 1, 2, 3 failed in a row with the same error "
                         "(RuntimeError: the same bug); their tracebacks are above; fix it and rerun the same "
                         "command to resume the study")
    trials = optuna.load_study(study_name="bug", storage=open_storage(None)[0]).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 4
    assert [TrialRecord.of(t).error for t in trials] == ["RuntimeError: first bug"] + ["RuntimeError: the same bug"] * 3
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    (study_run,) = [r for r in runs if r.data.tags["kind"] == "study"]
    assert study_run.info.status == "FAILED" and "RepeatedFailure" in study_run.data.tags["error"]
    assert study_run.data.tags["stop_reason"] == "stopped: 3 trials in a row failed with the same error"
    assert study_run.data.metrics["trials/fail"] == 4
    assert sorted(r.info.status for r in runs if r.data.tags["kind"] == "trial") == ["FAILED"] * 4
