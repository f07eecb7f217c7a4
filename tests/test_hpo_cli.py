"""`python -m hpo` as users run it: bad input, dry run, SIGKILL and resume, two workers on one study."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState, create_trial

from conventions.cli import run_main
from hpo.__main__ import main
from hpo.study_record import StudyWriter
from hpo.trial_record import TrialRecord
from tests.conftest import REPO
from tests.test_data_support import unsorted_ohlcv
from training.train import OBJECTIVE

TINY = ["--model", "itransformer", "--data-tier", "a20", "--input-size", "16", "--batch-size", "256",
        "--max-epochs", "2", "--accelerator", "cpu"]


def all_runs():
    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def journal(tmp_path):
    return JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))


def studies(tmp_path):
    if not (tmp_path / "optuna.journal").exists():
        return []
    return [s.study_name for s in journal(tmp_path).get_all_studies()]


def hpo_process(tmp_path, args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "hpo", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


BAD = {  # flags -> the error; each command runs in its own directory
    ("--budgets", "20k,2X"): "unknown budget '2X'",
    ("--param-budget", "500"): "budget 500 is too small for any itransformer shape",
    ("--budgets", "20k,50k", "--forced-extremes"): "--trials 2 is smaller than the 12 configs that run first",
    ("--max-epochs", "0"): "train.max_epochs must be >= 1",
    ("--trials", "0"): "--trials must be >= 1",
    ("--demo", "--trials", "0"): "--trials must be >= 1",  # given flags win over the demo's, 0 too
    ("--storage", "postgresql://me:secret@127.0.0.1:1/db"): "cannot open storage postgresql://me:***@127.0.0.1:1/db",
    ("--supplementary",): "no study storage at optuna.journal",
    ("--supplementary", "--study-name", "one-budget"): "needs completed trials in at least 2 budgets",
    ("--storage", "not-a-journal.txt"): "not-a-journal.txt is not an Optuna journal file (line 1)",
    ("--set", "model.hidden_size=16"): "--set model.hidden_size: a study decides the shape per budget",
    ("--budgets", "20k,0.02M"): "budget 20k is listed twice in '20k,0.02M'",
    ("--data", "unsorted.csv"): "unsorted.csv: ",  # the rest: tests.test_data_support.unsorted_ohlcv's message
}
FRESH = ("--storage", "postgresql://me:secret@127.0.0.1:1/db")  # also as a fresh process (each start ~10 s)


def test_bad_input_is_one_line_and_writes_nothing_and_dry_run_writes_nothing(tmp_path, monkeypatch, capsys):
    """In-process through `run_main` as `python -m hpo` runs it; one case also as a fresh process."""
    dirs = {args: tmp_path / f"bad{i}" for i, args in enumerate(BAD)}
    for d in dirs.values():
        d.mkdir()
    not_journal = dirs["--storage", "not-a-journal.txt"] / "not-a-journal.txt"
    not_journal.write_text("garbage\n")
    unsorted = unsorted_ohlcv(dirs["--data", "unsorted.csv"] / "unsorted.csv")
    one_budget = dirs["--supplementary", "--study-name", "one-budget"]
    phase1 = optuna.create_study(storage=journal(one_budget), study_name="one-budget", direction="maximize")
    StudyWriter(phase1).defined({"objective": OBJECTIVE})
    dist = {"budget": CategoricalDistribution(["20k", "50k"])}
    phase1.add_trial(create_trial(value=0.6, params={"budget": "20k"}, distributions=dist))
    phase1.add_trial(create_trial(state=TrialState.FAIL, params={"budget": "50k"}, distributions=dist))
    fresh = hpo_process(dirs[FRESH], [*TINY, "--trials", "2", *FRESH])

    seen = {}
    for args, d in dirs.items():
        monkeypatch.chdir(d)
        code = 0
        try:
            run_main(main, [*TINY, "--trials", "2", *args])
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and BAD[args] in lines[0], (args, err)
        assert "unsorted.csv" not in args or lines[0] == f"error: unsorted.csv: {unsorted}"
        assert "secret" not in out + err
        seen[args] = lines
        expected = ["one-budget"] if "one-budget" in args else []
        assert studies(d) == expected, args  # no study created
        if not expected:  # nor an empty journal file
            assert not (d / "optuna.journal").exists(), args
    out, err = fresh.communicate(timeout=300)
    assert fresh.returncode == 2 and err.strip().splitlines() == seen[FRESH] and "secret" not in out + err, err
    assert all_runs() == []  # no MLflow run, RUNNING or otherwise
    assert not_journal.read_text() == "garbage\n"  # nothing appended to a file that is not a journal

    dry = tmp_path / "dry"
    dry.mkdir()
    monkeypatch.chdir(dry)
    run_main(main, ["--model", "itransformer", "--data-tier", "a200", "--trials", "70", "--forced-extremes",
                    "--dry-run"])
    out = capsys.readouterr().out
    forced = [line for line in out.splitlines() if " params  " in line]
    assert len(forced) == 18 and "forced configs (18" in out
    assert "200M" not in out and "1,984,321" in out  # 2M shallow-wide at 200 features, L80
    assert "budget        categorical  750k, 2M, 20M" in out
    assert list(dry.iterdir()) == [] and all_runs() == []


def check_runs_match_trials(study):
    """One parent; every started trial has exactly one nested run with its number; none left RUNNING."""
    runs = all_runs()
    (parent,) = [r for r in runs if r.data.tags["kind"] == "study"]
    children = [r for r in runs if r.data.tags["kind"] == "trial"]
    started = [t for t in study.trials if t.state != TrialState.WAITING]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [t.number for t in started]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert "RUNNING" not in {r.info.status for r in runs}
    assert [t.number for t in study.trials] == list(range(len(study.trials)))  # unique, none lost
    return parent, {int(r.data.tags["trial_number"]): r for r in children}


@pytest.mark.slow  # minutes of several `python -m hpo` processes; CI runs it (-m slow)
@pytest.mark.parametrize("folds", [1, 2])
def test_sigkill_mid_trial_then_rerun_resumes(run_cli, tmp_path, folds):
    args = [*TINY, "--budgets", "20k,50k", "--trials", "2", "--folds", str(folds)]
    proc = hpo_process(tmp_path, args)
    deadline = time.monotonic() + 300
    while True:  # kill once a trial has completed and the next one runs inside its MLflow run
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no running trial to kill: {proc.communicate()[1][-3000:]}")
        trials = journal(tmp_path).get_all_trials(0) if studies(tmp_path) else []
        running = [t for t in trials if t.state == TrialState.RUNNING and TrialRecord.of(t).mlflow_run_id is not None]
        if running and any(t.state == TrialState.COMPLETE for t in trials):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    (killed,) = running
    assert MlflowClient().get_run(TrialRecord.of(killed).mlflow_run_id).info.status == "RUNNING"

    rerun = run_cli("hpo", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"trials {killed.number} were left RUNNING by a dead worker" in rerun.stdout
    name = "itransformer-a20-L16" + ("-2folds" if folds == 2 else "")
    study = optuna.load_study(study_name=name, storage=journal(tmp_path))
    trials = study.trials
    assert {n: trials[n].value for n in done_before} == done_before  # completed trials kept
    assert trials[killed.number].state == TrialState.FAIL
    assert "is gone" in TrialRecord.of(trials[killed.number]).failed_reason
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2 == len(trials) - 1
    parent, runs = check_runs_match_trials(study)
    assert runs[killed.number].info.status == "FAILED"
    assert runs[killed.number].data.tags["trial_state"] == "FAIL"
    assert parent.info.status == "FINISHED"
    # the summary: the best trial's objective on the samples that selected it, its evidence on those that did not
    best = study.best_trial
    halves = ("the selection half of val", "the report half of val") if folds == 1 else (
        "the selection half of each of the 2 folds' val blocks; the mean over folds",
        "the report half of val, over the folds")
    assert f"selected on val_select ({halves[0]}): best/val_select/auroc {best.value:.4f}" in rerun.stdout
    assert (f"reported on val_report ({halves[1]}), which chose nothing: best/val/auroc "
            f"{TrialRecord.of(best).evidence['best/val/auroc']:.4f}") in rerun.stdout


@pytest.mark.slow  # minutes of several `python -m hpo` processes; CI runs it (-m slow)
def test_two_workers_share_one_study(tmp_path):
    args = [*TINY, "--budgets", "20k,50k", "--trials", "3"]
    workers = [hpo_process(tmp_path, args) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=400)
        assert w.returncode == 0, err
    study = optuna.load_study(study_name="itransformer-a20-L16", storage=journal(tmp_path))
    started = [t for t in study.trials if t.state != TrialState.WAITING]
    # counting the study and starting a trial is one step across workers (storage.Admission): exactly 3
    assert len(started) == 3 and all(t.state == TrialState.COMPLETE for t in started)
    assert len(study.trials) == len(started)
    params = [str(sorted(t.params.items())) for t in started]
    assert len(set(params)) == len(params)
    parent, runs = check_runs_match_trials(study)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials/complete"] == len(started)
    assert all(runs[t.number].data.params["params.count"] == str(TrialRecord.of(t).params_count) for t in started)


def test_dry_run_imports_neither_mlflow_nor_optuna(tmp_path):
    code = ("import runpy, sys\n"
            "sys.argv = ['hpo', '--data-tier', 'a200', '--trials', '70', '--forced-extremes', '--dry-run']\n"
            "runpy.run_module('hpo', run_name='__main__')\n"
            "print('imported:', sorted(m for m in ('mlflow', 'optuna') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "forced configs (18" in proc.stdout and proc.stdout.strip().endswith("imported: []")
