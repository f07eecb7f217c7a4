"""`python -m hpo.ablation --folds K`: each cell a run over K walk-forward folds, the summary the mean over folds
on one within-fold bootstrap, the per-fold table, resume; bad input refused before anything is written. Real
Lightning and MLflow on the embedded a20 data with a tiny network (one ablation shared by the module)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from datamodules.prepared import prepare
from hpo.ablation.__main__ import main
from hpo.ablation.plan import build_parser, plan_from_args
from hpo.ablation.run import run_ablation
from hpo.ablation.summary import CI_SEED, FOLD_COLUMNS, N_BOOT, cell_predictions
from models.intervals import FoldBootstrap, rank_auroc
from tests.conftest import shared, use_store
from training.train import REPORT

pytestmark = pytest.mark.slow  # a module store of 2 cells x 2 folds (about 15 s on 2 cores); CI runs it (-m slow)

TINY = ["--data-tier", "a20", "--batch-size", "256", "--max-epochs", "1", "--accelerator", "cpu", "--model",
        "itransformer", "--set", "model.hidden_size=16", "--set", "model.n_layers=1", "--set", "model.n_heads=2"]
K = 2


def plan(*args):
    return plan_from_args(build_parser().parse_args([*TINY, *args]))


def folds_plan():
    return plan("--input-sizes", "16,24", "--seeds", "1", "--folds", str(K))


@pytest.fixture(scope="module")
def ablated(module_store):
    with shared(module_store):
        return run_ablation(folds_plan(), echo=lambda line: None)


@pytest.fixture
def store(ablated, module_store, monkeypatch):
    use_store(monkeypatch, module_store)
    return ablated


def children(run_id):
    return MlflowClient().search_runs(["0"], f"tags.mlflow.parentRunId = '{run_id}'")


def test_rows_are_the_mean_over_folds_of_each_fold(store, tmp_path):
    out, p = store, folds_plan()
    client = MlflowClient()
    cells = children(out.parent_run_id)
    assert sorted(r.data.tags["input_size"] for r in cells) == ["16", "24"]
    assert {(r.data.tags["kind"], r.data.tags["folds"], r.info.status) for r in cells} == {
        ("ablation-cell", str(K), "FINISHED")}
    parent = client.get_run(out.parent_run_id)
    views = [prepare(p.data).fold(k) for k in range(K)]
    boot = FoldBootstrap([v.labels(REPORT) for v in views], horizon=p.data.horizon,
                         histories=[v.labels("train") for v in views], n_boot=N_BOOT, seed=CI_SEED)
    assert parent.data.params["ci.method"] == boot.method == "stationary-block-t-within-folds"
    assert parent.data.tags["ci.block_length"] == ",".join(map(str, boot.blocks))
    table, per_fold = out.summary.table, out.summary.folds
    assert list(per_fold.columns) == FOLD_COLUMNS and len(per_fold) == 2 * K
    for _, row in table.iterrows():
        (cell,) = [r for r in cells if r.data.tags["input_size"] == str(row["input_size"])]
        assert row["run_ids"] == cell.info.run_id
        report = cell_predictions(cell.info.run_id)[REPORT]
        frames = [report[report["fold"] == k + 1] for k in range(K)]
        for view, frame in zip(views, frames, strict=True):  # each fold's report part, as the data lay it out
            assert np.array_equal(frame["label"].to_numpy(), view.labels(REPORT))
            assert np.array_equal(frame.index, view.dates(REPORT))
        aurocs = [rank_auroc(f["label"].to_numpy(), f["probability"].to_numpy()) for f in frames]
        assert row["val_auroc"] == pytest.approx(np.mean(aurocs), abs=1e-12)
        mean = boot.resample([f["probability"].to_numpy() for f in frames])
        assert (row["val_auroc_ci_low"], row["val_auroc_ci_high"]) == pytest.approx(boot.interval(mean), abs=1e-12)
        assert parent.data.metrics[f"itransformer/L{row['input_size']}/val/auroc"] == pytest.approx(row["val_auroc"])
        # the per-fold table: each fold run's own report AUROC (nested under the cell run)
        fold_runs = {int(r.data.tags["fold"]): r for r in children(cell.info.run_id)}
        assert sorted(fold_runs) == list(range(1, K + 1))
        # what chose the size: the mean over folds of each fold run's objective; the baselines fit per fold
        assert row["select_auroc"] == pytest.approx(
            np.mean([r.data.metrics["best/val_select/auroc"] for r in fold_runs.values()]), abs=1e-4)
        assert row["baseline_auroc"] == pytest.approx(
            np.mean([r.data.metrics[f"baseline/{row['best_baseline']}/val/auroc"] for r in fold_runs.values()]),
            abs=1e-6)
        mine = per_fold[per_fold["input_size"] == row["input_size"]].sort_values("fold")
        assert mine["fold"].tolist() == list(range(1, K + 1))
        for (_, f), auroc in zip(mine.iterrows(), aurocs, strict=True):
            assert fold_runs[f["fold"]].data.tags["kind"] == "train"
            assert f["val_auroc"] == pytest.approx(fold_runs[f["fold"]].data.metrics["best/val/auroc"], abs=1e-6)
            assert f["val_auroc"] == pytest.approx(auroc, abs=1e-12)
            assert f["val_auroc_ci_low"] < f["val_auroc"] < f["val_auroc_ci_high"]
            assert parent.data.metrics[f"itransformer/L{row['input_size']}/fold/{f['fold']}/val/auroc"] == (
                pytest.approx(f["val_auroc"]))
    markdown = Path(client.download_artifacts(out.parent_run_id, "ablation/table.md", str(tmp_path))).read_text()
    spans = out.summary.spans
    assert [s.dates for s in spans] == [v.date_range(REPORT) for v in views]
    assert f"in all ({spans[0].dates[0]} .. {spans[-1].dates[1]}; each fold's below)" in markdown
    section = markdown.split("## Val AUROC per fold")[1].split("## All rows")[0]
    header = f"| model | input size | fold 1 ({spans[0].dates[0]} .. {spans[0].dates[1]}, {spans[0].n_dates}) | "
    assert header in section
    first = per_fold.iloc[0]
    assert f"| itransformer | 16 | {first['val_auroc']:.3f} [{first['val_auroc_ci_low']:.3f}, " in section
    assert "on val_report (mean over 2 folds), which chose nothing" in markdown
    artifacts = {a.path for a in client.list_artifacts(out.parent_run_id, "ablation")}
    assert {"ablation/folds.csv", "ablation/plot.png", "ablation/plot_by_fold.png"} <= artifacts


def test_a_rerun_reuses_the_finished_cells(store):
    again = run_ablation(folds_plan(), echo=lambda line: None)
    assert (again.parent_run_id, again.ran, again.reused, again.failed) == (store.parent_run_id, 0, 2, [])
    assert len(children(store.parent_run_id)) == 2
    pd.testing.assert_frame_equal(again.summary.table, store.summary.table)
    pd.testing.assert_frame_equal(again.summary.folds, store.summary.folds)


def test_folds_and_window_are_part_of_the_cell_key():
    keys = {args: [c.key for c in plan("--input-sizes", "16", "--seeds", "1", *args).cells]
            for args in ((), ("--folds", "2"), ("--folds", "2", "--window", "rolling"))}
    assert len({key for cells in keys.values() for key in cells}) == 3
    names = {plan("--input-sizes", "16", "--seeds", "1", *args).name for args in keys}
    assert len(names) == 3  # another parent: a K=1 ablation is never resumed as K=2


@pytest.mark.parametrize(("args", "says"), [
    (["--folds", "40"], ["--folds 40 is too many for the val span: fold 1's select part"]),
    (["--folds", "0"], ["folds must be an integer >= 1, got 0"]),
    # more rows than fold 1 trains on (3456), fewer than the last fold's (3830): fold 1 bounds the input size
    (["--folds", "2", "--input-sizes", "16,3600"], [
        "input size 3600 is more than the data allow", "leaves 3456 training rows in the walk-forward fold with "
        "the fewest (2 folds)", "the longest input size this data allows is 3456"]),
])
def test_bad_folds_fail_before_anything_is_written(capsys, args, says):
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [*TINY, "--input-sizes", "16", *args])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {says[0]}") and all(part in line for part in says), line
    client = MlflowClient()
    assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []
