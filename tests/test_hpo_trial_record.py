"""A trial's user attributes: what the writer sets on a live trial reads back through `TrialRecord.of`, and
a trial of an older study, which lacks most of them, reads with the defaults."""

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

from hpo.trial_record import SEARCHED, TrialRecord, TrialWriter
from hpo.worker import Worker


def test_what_the_writer_sets_on_a_live_trial_reads_back(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(storage=storage, study_name="s")
    enqueued = TrialRecord(forced=True, style="deep", regularisation="strong")
    study.enqueue_trial({"x": 1.0}, user_attrs=enqueued.attrs())
    trial = study.ask()
    write, worker = TrialWriter(trial), Worker("host/1", 7, "123")
    write.started("run-1")
    write.worker(worker)
    write.beat()
    write.shaped("20k", "deep")
    write.counted_params(19_500)
    evidence = {"best/val/auroc": 0.61, "best/val/auroc_ci_low": 0.55}
    write.completed([4], evidence, "logistic")
    study.tell(trial, 0.6)
    frozen = optuna.load_study(study_name="s", storage=storage).trials[0]
    read = TrialRecord.of(frozen)
    assert read.heartbeat is not None and read.heartbeat > 0
    assert read == TrialRecord(forced=True, style="deep", regularisation="strong", mlflow_run_id="run-1",
                               worker=worker, heartbeat=read.heartbeat, budget="20k", params_count=19_500,
                               epochs=4, evidence=evidence, best_baseline="logistic")
    assert read.counts and read.searched_style == "deep" and read.why_failed is None


def test_a_transferred_trial_outside_every_budget_and_a_failure_read_back(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 1.0}, user_attrs=TrialRecord(transferred="runs:/abc").attrs())
    trial = study.ask()
    TrialWriter(trial).shaped("none", "transferred", 3_000_000, outside_budgets=True)
    TrialWriter(trial).errored(RuntimeError("boom"))
    TrialWriter.stored(storage, trial._trial_id).failed("stale: no heartbeat for 700 s")  # another worker's
    study.tell(trial, state=TrialState.FAIL)
    read = TrialRecord.of(optuna.load_study(study_name="s", storage=storage).trials[0])
    assert read == TrialRecord(transferred="runs:/abc", budget="none", style="transferred",
                               params_count=3_000_000, outside_budgets=True, error="RuntimeError: boom",
                               failed_reason="stale: no heartbeat for 700 s")
    assert not read.counts and read.why_failed == "RuntimeError: boom"


def test_an_old_trial_without_the_newer_attributes_reads_with_defaults():
    old = create_trial(value=0.6, params={"x": 1.0},
                       distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
                       user_attrs={"mlflow_run_id": "r", "evidence": {"best/val/auroc": 0.6}, "unknown": 1,
                                   "epochs": None})
    read = TrialRecord.of(old)
    assert read == TrialRecord(mlflow_run_id="r", evidence={"best/val/auroc": 0.6})
    assert (read.forced, read.epochs, read.style, read.searched_style, read.worker, read.outside_budgets,
            read.counts) == (False, 0, None, SEARCHED, None, False, True)
    assert TrialRecord.of(create_trial(state=TrialState.WAITING)) == TrialRecord()
    assert TrialRecord().attrs() == {}
