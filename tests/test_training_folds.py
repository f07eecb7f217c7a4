"""Runs over walk-forward folds (`training.walkforward`, `python -m training --folds K`): one nested run per
fold, each exactly a one-split run on that fold's layout; the parent's mean over folds with an interval
resampled within folds (studies, ablations and promotion over folds: tests/test_hpo_folds.py,
test_hpo_ablation_folds.py, test_training_promote_folds.py)."""

from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from datamodules.prepared import prepare
from models.intervals import (
    FoldBootstrap,
    PairedBootstrap,
    fold_bootstrap_indices,
    rank_auroc,
    resampled_auroc,
    verdict,
)
from training.__main__ import build_parser, main
from training.cli import config_from_args
from training.train import OBJECTIVE, REPORT, SELECT, train
from training.walkforward import KIND, PLOT

RUN = ["--data-tier", "a20", "--max-epochs", "2", "--patience", "2", "--batch-size", "256",
       "--set", "model.hidden_size=16 model.n_heads=2 model.n_layers=1", "--accelerator", "cpu"]
TINY = [*RUN, "--input-size", "16", "--quiet"]


def test_fold_index_matrix_resamples_within_folds():
    sizes, blocks = [50, 30, 41], [5, 3, 1]
    idx = fold_bootstrap_indices(sizes, blocks, 200, 7)
    assert idx.shape == (200, sum(sizes))
    for start, n in ((0, 50), (50, 30), (80, 41)):
        cols = idx[:, start:start + n]
        assert cols.min() >= start and cols.max() < start + n  # never a sample of another fold
    # the blocks of fold 0 are runs of consecutive samples (mean length 5), fold 2's are single samples
    assert (np.diff(idx[:, :50], axis=1) == 1).mean() > 0.6
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 2, n) for n in sizes]
    scores = [y + rng.normal(0, 1.5, y.size) for y in labels]
    boot = FoldBootstrap(labels, horizon=1, n_boot=300, seed=3)
    rs = boot.resample(scores)
    # the mean's resamples: each fold's AUROC on its own columns of the one matrix, averaged
    expected = np.mean([resampled_auroc(y, s, boot.idx[:, a:a + y.size] - a)
                        for y, s, a in zip(labels, scores, (0, 50, 80), strict=True)], axis=0)
    np.testing.assert_allclose(rs.samples, expected)
    points = [rank_auroc(y, s) for y, s in zip(labels, scores, strict=True)]
    assert np.isclose(rs.point, np.mean(points))
    low, high = boot.interval(rs)
    assert low < rs.point < high
    # one fold is the single-split bootstrap, resample for resample
    one = FoldBootstrap(labels[:1], horizon=1, n_boot=300, seed=3)
    paired = PairedBootstrap(labels[0], n_boot=300, seed=3)
    np.testing.assert_array_equal(one.idx, paired.idx)
    assert one.interval(one.resample(scores[:1])) == paired.interval(paired.resample(scores[0]))


def test_walk_forward_run_is_one_split_run_per_fold(capsys):
    run_main(main, [*TINY, "--folds", "2"])
    out = capsys.readouterr().out
    client = MlflowClient()
    [parent] = client.search_runs(["0"], f"tags.kind = '{KIND}'")
    folds = sorted(client.search_runs(["0"], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"),
                   key=lambda r: r.data.tags["fold"])
    assert [r.data.tags["fold"] for r in folds] == ["1", "2"]
    assert all(r.data.tags["kind"] == "train" for r in folds)
    assert [r.info.run_name for r in folds] == [f"itransformer-a20-L16-fold{k}of2" for k in (1, 2)]
    assert all(r.info.status == "FINISHED" for r in [parent, *folds])
    pm = parent.data.metrics
    frame = pd.read_parquet(client.download_artifacts(parent.info.run_id, "predictions/val.parquet"))
    assert set(frame["fold"]) == {1, 2} and set(frame["part"]) == {"select", "report"}
    reports = [frame[(frame["fold"] == k) & (frame["part"] == "report")] for k in (1, 2)]
    assert not set(reports[0]["date"]) & set(reports[1]["date"])  # no report sample in two folds
    for k, (run, report) in enumerate(zip(folds, reports, strict=True), start=1):
        m = run.data.metrics
        assert pm[f"fold/{k}/val/auroc"] == m["best/val/auroc"] == pytest.approx(
            rank_auroc(report["label"], report["probability"]), abs=1e-6)  # torchmetrics: float32
        assert (pm[f"fold/{k}/val/auroc_ci_low"], pm[f"fold/{k}/val/auroc_ci_high"]) == (
            m["best/val/auroc_ci_low"], m["best/val/auroc_ci_high"])
        best = run.data.tags["best_baseline"]
        assert parent.data.tags[f"fold/{k}/best_baseline"] == best
        assert pm[f"fold/{k}/baseline/best/val/auroc"] == m[f"baseline/{best}/val/auroc"]
        assert pm[f"fold/{k}/val_select/auroc"] == m[OBJECTIVE]
        assert pm[f"fold/{k}/best_epoch"] == m["best/epoch"]
        assert f"fold {k} (val_report {report['date'].min().date()} .. {report['date'].max().date()}): " \
               f"best/val/auroc {m['best/val/auroc']:.4f}" in out
    assert pm["best/val/auroc"] == pytest.approx((pm["fold/1/val/auroc"] + pm["fold/2/val/auroc"]) / 2)
    assert pm["best/val/auroc_ci_low"] < pm["best/val/auroc"] < pm["best/val/auroc_ci_high"]
    best = parent.data.tags["best_baseline"]
    assert best == max(("majority", "volatility", "logistic", "boosting"),
                       key=lambda n: pm[f"baseline/{n}/val_select/auroc"])  # chosen on the select parts
    assert pm["baseline/best/val/auroc"] == pm[f"baseline/{best}/val/auroc"]
    low, high = pm["best/val/auroc_vs_best_baseline_ci_low"], pm["best/val/auroc_vs_best_baseline_ci_high"]
    assert parent.data.tags["verdict"] == verdict(low, high)
    assert f"mean over folds: best/val/auroc {pm['best/val/auroc']:.4f}" in out
    assert f"model minus it [{low:+.4f}, {high:+.4f}]" in out
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("### Walk-forward run: itransformer a20 L16, 2 folds")
    assert PLOT in [a.path for a in client.list_artifacts(parent.info.run_id, "plots")]

    # each fold is a one-split run on its layout, computed independently: fold 2 is the split a run with
    # --folds 2 sees; fold 1's is the one split whose val is its block (test moved: no run reads it)
    cfg = config_from_args(build_parser().parse_args([*TINY, "--folds", "2"]))
    prepared = prepare(cfg.data)
    gap, n = cfg.data.horizon + cfg.data.embargo, prepared.folds[0].rows.n
    block_end = prepared.folds[0].rows.val.stop
    val_frac = (block_end + gap) / n - cfg.data.train_frac
    one = cfg.override({"data.folds": 1, "data.val_frac": val_frac,
                        "data.test_frac": 1 - cfg.data.train_frac - val_frac})
    for k, reference in ((1, train(one, progress=False)), (2, train(cfg, progress=False))):
        m = folds[k - 1].data.metrics
        for key in ("best/val/auroc", "best/val/auroc_ci_low", "best/val/auroc_ci_high", OBJECTIVE, "best/epoch",
                    "baseline/best/val/auroc", "best/val/auroc_vs_best_baseline_ci_low", "best/train/auroc"):
            assert reference.metrics[key] == m[key], (k, key)

    # scrambling a fold's report labels changes nothing that chose its epoch
    for k in (0, 1):
        view = prepared.fold(k)
        y = view.y.copy()
        report = view.ends[REPORT]
        y[report] = np.random.default_rng(k).permutation(y[report])
        assert not np.array_equal(y, view.y) and np.array_equal(y[view.ends[SELECT]], view.y[view.ends[SELECT]])
        probe = train(cfg, progress=False, data=replace(view, y=y, baseline_scores={}, views={}))
        m = folds[k].data.metrics
        assert (probe.best_epoch, probe.objective) == (m["best/epoch"], m[OBJECTIVE])
        history = [x.value for x in client.get_metric_history(probe.run_id, "val/auroc")]
        assert history == [x.value for x in client.get_metric_history(folds[k].info.run_id, "val/auroc")]


def test_reading_an_artifact_back_draws_no_progress_bar(tiny_config, capsys):
    """A run over folds reads each fold's predictions back: MLflow's download bar would sit between the
    command's own lines (`training.tracking` turns it off unless the user set it)."""
    from training import tracking

    with mlflow.start_run() as run:
        tracking.log_frame(pd.DataFrame({"a": [1, 2]}), "tables/t.parquet")
    capsys.readouterr()
    assert tracking.read_frame(run.info.run_id, "tables/t.parquet")["a"].tolist() == [1, 2]
    captured = capsys.readouterr()
    assert "Downloading artifacts" not in captured.err + captured.out
