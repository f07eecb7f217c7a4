"""`python -m hpo.audit` on a constructed study: real Optuna journal storage (trials made with `create_trial`)
and real MLflow runs (the temp sqlite store of conftest) holding the metrics the audit reads. Every finding
is planted; the audit must find exactly those."""

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from conventions.cli import run_main
from conventions.errors import EXIT_FINDINGS, UserError
from hpo.audit import checks
from hpo.audit.__main__ import main
from hpo.audit.checks import SECTIONS
from hpo.audit.report import figures
from hpo.audit.trials import collect
from hpo.storage import open_storage
from hpo.study_record import LEGACY_OBJECTIVE, StudyWriter
from hpo.trial_record import TrialRecord
from models.intervals import selection_null
from training import tracking
from training.train import OBJECTIVE

BUDGETS = ("20k", "50k", "100k")
SPACE = {"budget": CategoricalDistribution(BUDGETS), "lr": FloatDistribution(1e-5, 1e-2, log=True),
         "dropout": FloatDistribution(0.0, 0.5), "ff_mult": CategoricalDistribution((1, 2, 4))}
BASELINE = 0.62
REPORTED = -0.02  # each trial's val_report AUROC (`best/val/auroc`) minus its objective (its value, on val_select)
# number: (objective, budget, lr, dropout, ff_mult). Trials 0-3 (in the top five) sit at the top of lr's range
TRIALS = {
    0: (0.62, "20k", 9e-3, 0.25, 2), 1: (0.63, "50k", 8e-3, 0.20, 2), 2: (0.64, "100k", 1e-2, 0.30, 2),
    3: (0.61, "20k", 7e-3, 0.22, 2), 4: (0.60, "50k", 1e-4, 0.28, 2), 5: (0.58, "100k", 2e-4, 0.15, 4),
    6: (0.57, "20k", 3e-4, 0.35, 1), 7: (0.56, "50k", 1e-4, 0.30, 4), 8: (0.55, "100k", 2e-4, 0.20, 1),
    9: (0.54, "20k", 1e-4, 0.25, 4), 10: (0.53, "50k", 3e-4, 0.18, 2), 11: (0.52, "100k", 1e-4, 0.32, 1),
    12: (0.90, "50k", 1e-4, 0.25, 2),  # planted: implausibly high against the best baseline
    13: (0.40, "20k", 2e-4, 0.25, 2),  # planted: interval entirely below 0.5
    14: (0.55, "100k", 2e-4, 0.25, 4),  # planted: a NaN training loss
    15: (0.57, "20k", 1e-4, 0.25, 1),  # planted: val loss rises with val AUROC every epoch
    16: (0.53, "50k", 2e-4, 0.25, 2),  # planted: one-class training split (train AUROC NaN)
}
PLANTED = {("implausibly_high", 12), ("below_chance", 13), ("non_finite_loss", 14), ("loss_metric_mismatch", 15),
           ("one_class", 16)}
OVERFIT = 1  # planted: train AUROC 0.95 at the best epoch
# val_select of the trial with the best objective: other dates, another positive rate than its val_report
SELECT_DATES = pd.bdate_range("2014-01-01", periods=200)
SELECT_LABELS = (np.arange(200) % 5 == 0).astype(float)


def predictions(signal: np.ndarray, labels: np.ndarray, dates: pd.DatetimeIndex, part: str = "report") -> pd.DataFrame:
    return pd.DataFrame({"date": dates, "label": labels.astype(np.int8), "probability": signal,
                         "probability_calibrated": np.nan, "part": part})


def make_run(client, experiment, parent_id, number, histories, metrics, frame=None, status="FINISHED"):
    run = client.create_run(experiment, run_name=f"planted-{number}",
                            tags={"kind": "trial", "mlflow.parentRunId": parent_id, "trial_number": str(number)})
    run_id = run.info.run_id
    points = [Metric(k, float(v), 0, step) for k, values in histories.items() for step, v in enumerate(values)]
    points += [Metric(k, float(v), 0, 0) for k, v in metrics.items()]
    client.log_batch(run_id, metrics=points, params=[])
    client.log_param(run_id, "data.horizon", "1")
    if frame is not None:
        path = Path(f"predictions-{number}") / "val.parquet"
        path.parent.mkdir()
        frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), "predictions")
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def planted():
    """Study `planted` in ./optuna.journal with its parent run and one MLflow run per trial."""
    client = MlflowClient()
    experiment = tracking.experiment_id()
    parent_id = client.create_run(experiment, run_name="planted", tags={"kind": "study"}).info.run_id
    client.set_terminated(parent_id, "FINISHED")
    storage, _ = open_storage(None)
    study = optuna.create_study(study_name="planted", storage=storage, direction="maximize")
    StudyWriter(study).parent(parent_id)
    StudyWriter(study).defined({"objective": OBJECTIVE})

    rng = np.random.default_rng(0)
    n = 300
    dates = pd.bdate_range("2015-01-01", periods=n)
    labels = (rng.random(n) < 0.4).astype(float)
    weak = labels * 0.3 + rng.random(n)  # AUROC ~0.65
    # the best of 20k and 100k score the same (not distinguishable), the best of 50k separates the classes
    frames = {0: predictions(weak, labels, dates), 2: predictions(weak, labels, dates),
              12: pd.concat([predictions(rng.random(len(SELECT_DATES)), SELECT_LABELS, SELECT_DATES, "select"),
                             predictions(labels * 2.0 + rng.random(n), labels, dates)])}

    for number, (value, budget, lr, dropout, ff_mult) in TRIALS.items():
        reported = value + REPORTED
        evidence = {"best/val/auroc": reported, "best/val/auroc_ci_low": reported - 0.07,
                    "best/val/auroc_ci_high": reported + 0.07, "baseline/best/val/auroc": BASELINE,
                    "best/val/auroc_vs_best_baseline_ci_low": reported - BASELINE - 0.05,
                    "best/val/auroc_vs_best_baseline_ci_high": reported - BASELINE + 0.05}
        train_auroc = {OVERFIT: 0.95, 16: math.nan}.get(number, value + 0.03)
        histories = {"train/loss": [0.70, 0.66, 0.63, 0.61], "val/loss": [0.70, 0.69, 0.685, 0.68],
                     "val/auroc": [0.45, 0.47, 0.49, value]}
        if number == 14:
            histories["train/loss"] = [0.70, math.nan, 0.63, 0.61]
        if number == 15:
            histories["val/loss"] = [0.70, 0.71, 0.72, 0.73, 0.74]
            histories["val/auroc"] = [0.50, 0.52, 0.54, 0.56, value]
        run_id = make_run(client, experiment, parent_id, number, histories,
                          {**evidence, OBJECTIVE: value, "best/train/auroc": train_auroc, "best/epoch": 3},
                          frames.get(number))
        layers = f"n_layers_{budget}"
        study.add_trial(create_trial(
            state=TrialState.COMPLETE, value=value,
            params={"budget": budget, layers: 2 + number % 2, "lr": lr, "dropout": dropout, "ff_mult": ff_mult},
            distributions={**SPACE, layers: IntDistribution(1, 4)},
            user_attrs=TrialRecord(mlflow_run_id=run_id, evidence=evidence, best_baseline="logistic", budget=budget,
                                   style="searched", epochs=4, params_count=1000).attrs()))

    run_id = make_run(client, experiment, parent_id, 17, {"val/loss": [0.7, 0.71], "val/auroc": [0.5, 0.49]}, {})
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params={"budget": "20k", "n_layers_20k": 1, "lr": 1e-3, "dropout": 0.1, "ff_mult": 1},
        distributions={**SPACE, "n_layers_20k": IntDistribution(1, 4)}, intermediate_values={0: 0.5, 1: 0.49},
        user_attrs=TrialRecord(mlflow_run_id=run_id, budget="20k", style="searched").attrs()))
    run_id = make_run(client, experiment, parent_id, 18, {}, {}, status="FAILED")
    study.add_trial(create_trial(
        state=TrialState.FAIL, params={"budget": "50k", "n_layers_50k": 1, "lr": 1e-3, "dropout": 0.1, "ff_mult": 1},
        distributions={**SPACE, "n_layers_50k": IntDistribution(1, 4)},
        user_attrs=TrialRecord(mlflow_run_id=run_id, error="RuntimeError: planted failure").attrs()))
    return parent_id


def audit_run(parent_id=None):
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("kind") == "audit"]
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags.get("mlflow.parentRunId") == parent_id
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "audit/report.json")).read_text())
    return run, report


def test_audit_finds_exactly_what_was_planted(planted, capsys):
    assert main(["--study", "planted"]) == 0
    run, report = audit_run(planted)
    assert list(report) == list(SECTIONS)

    states = report["states"]
    assert states["counts"] == {"COMPLETE": 17, "FAIL": 1, "PRUNED": 1}
    assert states["failures"] == [{"trial": 18, "run_id": states["failures"][0]["run_id"],
                                   "reason": "RuntimeError: planted failure"}]

    (hit,) = report["boundary_hits"]
    assert (hit["param"], hit["edge"], sorted(hit["trials"]), hit["top"]) == ("lr", "high", [0, 1, 2, 3], 5)

    gap = report["overfit_gap"]
    assert [r["trial"] for r in gap["trials"]] == [12, 2, 1, 0, 3]  # the top five by objective
    assert gap["large"] == [OVERFIT]
    assert gap["max_gap"] == pytest.approx(0.95 - (0.63 + REPORTED))  # against the val_report AUROC

    importances = report["importances"]
    assert set(importances["values"]) <= {"budget", "lr", "dropout", "ff_mult"} and importances["values"]
    assert sum(importances["values"].values()) == pytest.approx(1.0)
    assert [h["trial"] for h in importances["history"]] == list(range(17))
    assert importances["history"][-1]["best_so_far"] == 0.90

    assert {(f["check"], f["trial"]) for f in report["suspicious"]} == PLANTED
    assert len(report["suspicious"]) == len(PLANTED)

    by_budget = report["by_budget"]
    assert [(r["budget"], r["best_trial"]) for r in by_budget["best"]] == [("20k", 0), ("50k", 12), ("100k", 2)]
    first = by_budget["best"][0]  # chosen by its objective, shown with its val_report AUROC and interval
    assert first["objective"] == 0.62 and first["val_auroc"] == pytest.approx(0.62 + REPORTED)
    assert first["ci_low"] == pytest.approx(0.62 + REPORTED - 0.07)
    verdicts = {(p["a"], p["b"]): p["distinguishable"] for p in by_budget["pairs"]}
    assert verdicts == {("20k", "50k"): True, ("20k", "100k"): False, ("50k", "100k"): True}

    selection = report["selection"]  # the best objective against the null on the same (val_select) labels
    # one random scorer per epoch evaluation: 17 trials of 4 epochs
    assert (selection["best_trial"], selection["trials"], selection["k"], selection["exceeds"]) == (12, 17, 68, True)
    assert (selection["objective"], selection["samples"], selection["best_value"]) == (OBJECTIVE, "val_select", 0.90)
    assert selection["null_p95"] == pytest.approx(selection_null(SELECT_LABELS, 68, horizon=1, seed=17))

    client = MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "audit")}
    assert {"audit/report.md", "audit/report.json", "audit/plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "audit/plots")}
    assert {"audit/plots/optimization_history.png", "audit/plots/importances.png", "audit/plots/overfit_gap.png",
            "audit/plots/by_budget.png", "audit/plots/boundary_hits.png"} == plots
    markdown = Path(client.download_artifacts(run.info.run_id, "audit/report.md")).read_text()
    for section in SECTIONS:
        assert f"## {section}" in markdown
    assert run.data.metrics["audit/suspicious"] == len(PLANTED)

    printed = capsys.readouterr().out
    assert "suspicious: 5" in printed and "lr: 4 of the top 5 trials at the high edge" in printed
    assert (f"selection: the best trial's best/val_select/auroc 0.9000 (trial 12) exceeds {selection['null_p95']:.4f}, "
            "what the best of 68 random scorers reaches on the same val_select labels") in printed
    assert main(["--study", "planted", "--fail-on-findings"]) == EXIT_FINDINGS  # not 1, a bug's


def test_a_study_that_selected_on_val_report_gets_its_null_on_val_report(planted):
    """A study whose definition records no objective carries `best/val/auroc` values: its null is simulated on
    the val_report labels, the samples those values were measured on."""
    study = optuna.load_study(study_name="planted", storage=open_storage(None)[0])
    StudyWriter(study).defined({})
    assert main(["--study", "planted"]) == 0
    selection = audit_run(planted)[1]["selection"]
    assert (selection["objective"], selection["samples"]) == (LEGACY_OBJECTIVE, "val_report")
    best = next(d for d in collect(study)[0] if d.number == 12)
    labels = best.predictions("val_report")["label"].to_numpy(dtype=float)
    assert selection["null_p95"] == pytest.approx(selection_null(labels, 68, horizon=1, seed=17))


def test_a_study_without_finished_trials_still_reports_states():
    storage, _ = open_storage(None)
    study = optuna.create_study(study_name="failed", storage=storage, direction="maximize")
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=TrialRecord(error="ValueError: bad").attrs()))
    assert main(["--study", "failed", "--fail-on-findings"]) == 0  # nothing suspicious
    _, report = audit_run(None)  # the study has no parent run: the audit run is top-level
    assert report["states"]["counts"] == {"FAIL": 1}
    assert report["states"]["reasons"] == {"ValueError: bad": 1}
    assert report["boundary_hits"] == [] and report["suspicious"] == [] and report["overfit_gap"]["trials"] == []
    assert report["by_budget"] == {"best": [], "pairs": [], "correction": "holm", "distinguishable": []}
    assert report["selection"] == {"note": "no completed trial"}


def test_unknown_study_and_storage(capsys):
    with pytest.raises(UserError, match="no study storage"):
        main(["--study", "x"])
    storage, _ = open_storage(None)
    optuna.create_study(study_name="other", storage=storage, direction="maximize")
    with pytest.raises(SystemExit) as exit_:
        run_main(main, ["--study", "x"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == "error: no study 'x' in optuna.journal; studies there: other"


def test_a_deleted_parent_run_is_no_parent(capsys):
    """A deleted run still reads back: the audit run must not be nested under it."""
    client = MlflowClient()
    parent_id = client.create_run(tracking.experiment_id(), run_name="gone", tags={"kind": "study"}).info.run_id
    client.delete_run(parent_id)
    storage, _ = open_storage(None)
    study = optuna.create_study(study_name="orphan", storage=storage, direction="maximize")
    StudyWriter(study).parent(parent_id)
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=TrialRecord(error="ValueError: bad").attrs()))
    assert main(["--study", "orphan"]) == 0
    audit_run(None)
    assert "(the study has no parent run)" in capsys.readouterr().out


def test_the_budget_plot_draws_an_interval_that_misses_its_point():
    """A bootstrap interval need not contain its point estimate (errorbar refuses negative distances)."""
    row = checks.BudgetBest("20k", "searched", 1, 0, 0.6, 0.60, 0.61, 0.70, None)
    report = checks.Report(checks.States(1, {"COMPLETE": 1}, [], {}), [],
                           checks.OverfitGap([], None, None, [], checks.LARGE_GAP, []),
                           checks.Importances("fanova", {}, []), [], checks.ByBudget([row], [], "holm", []),
                           checks.Selection(note="no completed trial"))
    (figure,) = figures("s", report, []).values()
    (bar,) = figure.axes[0].collections
    assert np.allclose(bar.get_segments(), [[[0, 0.61], [0, 0.70]]])


@pytest.mark.slow
def test_on_iid_data_a_study_and_its_audit_make_no_uncorrected_claim(tiny_config, tmp_path, capsys):
    """Nothing to learn (i.i.d. returns), 8 trials over two budgets: every trial's verdict is printed as
    uncorrected, and the audit's verdicts and advice (budget pairs, boundary hits, importances) are read
    from Holm-adjusted p-values, so none of them is a finding here."""
    from datamodules.prepared import prepare
    from hpo.settings import StudySettings
    from hpo.study import run_study
    from tests.test_data_support import synthetic_ohlcv

    synthetic_ohlcv(1500, seed=7).to_csv(tmp_path / "iid.csv")
    cfg = tiny_config.override({"data.path": str(tmp_path / "iid.csv"), "train.max_epochs": 2})
    lines = []
    run_study(StudySettings(base=cfg, study_name="iid", trials=8, budgets=["20k", "50k"]), prepare(cfg.data),
              echo=lines.append)
    study = optuna.load_study(study_name="iid", storage=open_storage(None)[0])
    verdicts = [line for line in lines if "best baseline" in line]
    assert len(verdicts) == len([t for t in study.trials if TrialRecord.of(t).evidence is not None]) >= 6
    assert all("(uncorrected: one of the study's trials, not a finding)" in v for v in verdicts)
    assert main(["--study", "iid"]) == 0
    _, report = audit_run(MlflowClient().search_runs(
        [tracking.experiment_id()], "tags.kind = 'study'")[0].info.run_id)
    (pair,) = report["by_budget"]["pairs"]
    assert report["by_budget"]["correction"] == "holm" and pair["family"] == 1
    assert pair["distinguishable"] == (pair["p_adjusted"] < 0.05) is False
    assert report["boundary_hits"] == []
    importances = report["importances"]
    assert importances["beats_null"] == [] and set(importances["p_adjusted"]) == set(importances["values"])
    printed = capsys.readouterr().out
    assert "widen the range" not in printed and "no parameter's effect beats chance" in printed
