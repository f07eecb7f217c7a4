"""`python -m training.promote` over walk-forward folds: a tiny `--folds 2` run promoted once (module-shared
store): the seeds train, choose their epoch and calibrate on the last fold's layout, the registered model keeps
that fold's scaler and train reference, the source's per-fold evidence is the promotion's development record
and the version's tags; a source without folds says so; too many folds writes nothing."""

import contextlib
import io

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from datamodules.datamodule import TierDataModule
from datamodules.prepared import prepare
from datamodules.splits import Scaler
from models.calibration import fit_calibrator
from models.intervals import rank_auroc
from tests.conftest import shared, tiny, use_store
from tests.test_training_promote import all_runs, promote, versions
from training.config import RunConfig
from training.evaluate import predict_probs
from training.promote import main
from training.promotion import development
from training.promotion.source import find_source
from training.train import OBJECTIVE, REPORT, SELECT, build_model
from training.walkforward import run_folds

pytestmark = pytest.mark.slow  # a 2-fold run and its 2-seed promotion (about 15 s on 2 cores); CI runs it (-m slow)

NAME = "spy-direction"


@pytest.fixture(scope="module")
def promoted(module_store):
    """A `--folds 2` walk-forward run and its promotion with 2 seeds: (walk-forward result, promotion run,
    its seed runs, stdout)."""
    with shared(module_store):
        walked = run_folds(tiny().override({"data.folds": 2, "train.max_epochs": 1}), progress=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_main(main, ["--run", walked.run_id, "--name", NAME, "--seeds", "2", "--quiet"])
        (promotion,) = [r for r in all_runs() if r.data.tags["kind"] == "promotion"]
        seeds = sorted((r for r in all_runs() if r.data.tags.get("promotion_run_id") == promotion.info.run_id),
                       key=lambda r: int(r.data.tags["promotion_seed"]))
    return walked, promotion, seeds, out.getvalue()


def test_the_seeds_train_choose_and_calibrate_on_the_last_fold(promoted, module_store, monkeypatch, tmp_path):
    walked, promotion, seeds, _ = promoted
    use_store(monkeypatch, module_store)
    client = MlflowClient()
    cfg = RunConfig.from_params(promotion.data.params)
    prepared = prepare(cfg.data)
    last, first = prepared.fold(1), prepared.fold(0)
    one = prepare(cfg.override({"data.folds": 1}).data)
    assert cfg.data.folds == 2 and last.date_range("train") != one.date_range("train")
    dm = TierDataModule(cfg.data, prepared=last)
    val, report = [], []
    for run in seeds:
        (dataset,) = run.inputs.dataset_inputs
        tags = {t.key: t.value for t in dataset.tags}
        assert tags["train_dates"] == "{} .. {}".format(*last.date_range("train"))
        assert tags["val_dates"] == "{} .. {}".format(*last.date_range("val"))
        frame = pd.read_parquet(client.download_artifacts(run.info.run_id, "predictions/val.parquet"))
        for part, stage in (("select", SELECT), ("report", REPORT)):  # its epoch chosen on the last block's select
            assert pd.DatetimeIndex(frame.loc[frame["part"] == part, "date"]).equals(last.dates(stage))
        net = build_model(cfg, dm.n_features)
        path = client.download_artifacts(run.info.run_id, "checkpoints/best.ckpt", str(tmp_path))
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
        val.append(predict_probs(net, dm.eval_loader("val")))
        report.append(predict_probs(net, dm.eval_loader(REPORT)))
    # seed 42 on the last fold's layout is the walk-forward run's fold 2, epoch for epoch
    fold2 = client.get_run(walked.folds[1].run_id).data.metrics
    m = promotion.data.metrics
    s42 = seeds[0].data.metrics
    assert (s42["best/val/auroc"], s42[OBJECTIVE], s42["best/epoch"]) == (
        fold2["best/val/auroc"], fold2[OBJECTIVE], fold2["best/epoch"])
    # the ensemble on the last fold's val_report; its calibrator fit on the last fold's val
    assert m["best/val/auroc"] == pytest.approx(rank_auroc(last.labels(REPORT), np.mean(report, axis=0)), abs=1e-6)
    calibrator = fit_calibrator(np.mean(val, axis=0), last.labels("val"))
    assert (m["calibrator/a"], m["calibrator/b"]) == pytest.approx((calibrator.a, calibrator.b), abs=1e-5)

    # the registered model scales with the last fold's train rows and compares inputs with them
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1").unwrap_python_model()
    rows = prepared.folds[1].train_rows  # fold 2's (`last` is `prepared` itself: its split is the last fold's)
    expected = Scaler.fit(prepared.features[rows.start:rows.stop])
    np.testing.assert_array_equal(model.mean, expected.mean)
    np.testing.assert_array_equal(model.std, expected.std)
    assert not np.array_equal(model.mean, first.scaler.mean) and not np.array_equal(model.mean, one.scaler.mean)
    train = last.split == "train"
    assert model.reference.rows == train.sum() == len(rows)
    np.testing.assert_array_equal(model.reference.high, last.features[train].max(0))
    assert model.reference.label_rate == pytest.approx(float(last.y[train].mean()))


def test_the_source_walk_forward_evidence_is_the_development_record(promoted, module_store, monkeypatch):
    walked, promotion, _, out = promoted
    use_store(monkeypatch, module_store)
    client = MlflowClient()
    source = client.get_run(walked.run_id).data
    m, tags = promotion.data.metrics, promotion.data.tags
    # value for value, under `development/`: every per-fold metric and the mean over folds
    kept = {k: v for k, v in source.metrics.items() if k.startswith("fold/") or k in development.MEAN}
    assert {k: v for k, v in m.items() if k.startswith(development.PREFIX)} == {
        development.PREFIX + k: v for k, v in kept.items()}
    assert {f"fold/{k}/val/auroc" for k in (1, 2)} <= set(kept) and "best/val/auroc" in kept
    for k in (1, 2):
        for key in (f"fold/{k}/best_baseline", f"fold/{k}/val_report_dates"):
            assert tags[development.PREFIX + key] == source.tags[key]
    assert (tags["development/folds"], tags["development/window"], tags["development/best_baseline"]) == (
        "2", "expanding", source.tags["best_baseline"])
    # the rows checked against are the whole data's: K does not move where val ends
    one = prepare(tiny().data).seen
    assert (tags["data.seen_until"], tags["data.seen_fingerprint"]) == (one.until, one.fingerprint)
    assert (source.tags["data.seen_until"], source.tags["data.seen_fingerprint"]) == (one.until, one.fingerprint)

    record = development.read(find_source(study=None, storage=None, run=walked.run_id, use_best_from=None))
    fold1 = f"fold 1 (val_report {source.tags['fold/1/val_report_dates']}): val_report AUROC " \
            f"{source.metrics['fold/1/val/auroc']:.4f}"
    mean = f"mean over folds development/best/val/auroc {source.metrics['best/val/auroc']:.4f} [95% CI " \
           f"{source.metrics['best/val/auroc_ci_low']:.4f}, {source.metrics['best/val/auroc_ci_high']:.4f}]"
    assert record.summary() in out and fold1 in out and mean in record.summary()
    assert "2 folds (expanding window)" in record.summary()
    note = tags["mlflow.note.content"]
    assert "Development record (walk-forward evidence of" in note and f"- {fold1}" in note and mean in note

    (version,) = versions()
    assert version.description == note
    vt = version.tags
    assert vt["development"] == record.summary()
    assert (vt["development.folds"], vt["development.window"]) == ("2", "expanding")
    for end in ("", "_ci_low", "_ci_high"):
        assert vt[f"development.val_auroc{end}"] == f"{source.metrics[f'best/val/auroc{end}']:.6f}"
    for k in (1, 2):
        assert vt[f"development.fold{k}"].startswith(
            f"val_report {source.tags[f'fold/{k}/val_report_dates']}: val_report AUROC "
            f"{source.metrics[f'fold/{k}/val/auroc']:.4f} [95% CI")
    # promoted again from the registered version, the record is the walk-forward run's, not the promotion's
    again = find_source(study=None, storage=None, run=None, use_best_from=f"models:/{NAME}/1")
    assert development.read(again) == record


def test_a_source_without_folds_has_no_development_record(capsys, tmp_path, tiny_config):
    """A one-split config file promoted with `--folds 2`: trained on the last fold, and said to have no
    walk-forward evidence (printed, in the note and the version's tag), no number made up for it."""
    (tmp_path / "cfg.json").write_text(tiny_config.override({"train.max_epochs": 1}).to_json())
    code, out, err = promote(capsys, "--use-best-from", "cfg.json", "--folds", "2", "--name", NAME, "--seeds", "1")
    assert code == 0, err
    assert "from flags: data.folds=2" in out
    line = ("walk-forward evidence: none; config file cfg.json holds no per-fold results (a one-split run or a "
            "config file), so this config has no development record over folds")
    assert line in out.splitlines()
    (promotion,) = [r for r in all_runs() if r.data.tags["kind"] == "promotion"]
    assert not [k for k in [*promotion.data.metrics, *promotion.data.tags] if k.startswith(development.PREFIX)]
    assert line in promotion.data.tags["mlflow.note.content"]
    (version,) = versions()
    assert version.tags["development"] == line
    assert not [k for k in version.tags if k.startswith("development.")]
    (seed,) = [r for r in all_runs() if r.data.tags.get("promotion_run_id") == promotion.info.run_id]
    last = prepare(tiny_config.override({"data.folds": 2}).data).fold(1)
    (dataset,) = seed.inputs.dataset_inputs
    assert {t.key: t.value for t in dataset.tags}["train_dates"] == "{} .. {}".format(*last.date_range("train"))


@pytest.mark.parametrize(("folds", "message"), [
    ("500", "error: --folds 500 is too many for the val span: "),
    ("0", "error: folds must be an integer >= 1, got 0"),
])
def test_folds_that_do_not_fit_are_one_line_and_write_nothing(capsys, tmp_path, tiny_config, folds, message):
    (tmp_path / "cfg.json").write_text(tiny_config.to_json())
    code, _, err = promote(capsys, "--use-best-from", "cfg.json", "--folds", folds, "--name", NAME)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(message), lines
    assert folds == "0" or "the largest --folds that fits is" in lines[0]
    assert not all_runs() and not versions()
