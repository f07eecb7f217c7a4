"""Walk-forward folds (`datamodules.folds`): K = 1 is the single split of before folds, bit for bit; K > 1
cuts the val span into consecutive blocks, each fold purged from its block and scaled on its own rows."""

import hashlib

import numpy as np
import pytest

from conventions.errors import UserError
from datamodules import sources, tiers
from datamodules.config import DataConfig
from datamodules.errors import DataError
from datamodules.prepared import prepare
from datamodules.splits import Scaler
from hpo.study_record import StudyWriter
from tests.test_data_support import synthetic_ohlcv


def _single_split(p, cfg: DataConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The layout before folds, written out from its rules: over n labelled rows train [0, a - gap),
    val [a, b - gap), test [b, n), then dataset rows (past the warm-up) where a window of L rows fits; val's
    samples cut into its first half and the rest less `gap` samples. Returns (split per row, ends)."""
    n, gap = p.source_rows - cfg.horizon, cfg.horizon + cfg.embargo
    a, b = round(n * cfg.train_frac), round(n * (cfg.train_frac + cfg.val_frac))
    row = np.arange(n)
    split = np.where(row < a - gap, "train",
                     np.where((row >= a) & (row < b - gap), "val", np.where(row >= b, "test", "purged")))
    split = split[p.warmup:]
    rows = np.flatnonzero(np.ones(len(split), bool))
    ends = {stage: rows[(split == stage) & (rows >= cfg.input_size - 1)] for stage in ("train", "val", "test")}
    val = ends["val"]
    ends["val_select"], ends["val_report"] = val[: len(val) // 2], val[len(val) // 2 + gap:]
    return split, ends


def _fingerprint(cfg: DataConfig) -> str:
    """The fingerprint before folds: raw data, tier definition and the label/split settings."""
    target = ":".join(map(str, (cfg.horizon, cfg.threshold, cfg.train_frac, cfg.val_frac, cfg.test_frac,
                                cfg.embargo)))
    data = sources.fingerprint(sources.load_ohlcv(sources.embedded_path()))
    return hashlib.sha256(f"{data}:{tiers.tier_fingerprint(cfg.tier)}:{target}".encode()).hexdigest()


SINGLE = [
    DataConfig(),
    DataConfig(input_size=16, horizon=5, embargo=2, train_frac=0.6, val_frac=0.25, test_frac=0.15),
    DataConfig(tier="a50", input_size=40, horizon=3, threshold=0.02, embargo=0),
    DataConfig(input_size=30, window="rolling"),  # one fold: the window changes nothing
]


@pytest.mark.parametrize("cfg", SINGLE, ids=["defaults", "h5", "a50", "rolling"])
def test_one_fold_is_the_single_split(cfg):
    p = prepare(cfg)
    split, ends = _single_split(p, cfg)
    np.testing.assert_array_equal(p.split, split)
    assert list(p.ends) == list(ends)
    for stage, rows in ends.items():
        np.testing.assert_array_equal(p.ends[stage], rows, err_msg=stage)
        assert len(rows) > 0
    reference = Scaler.fit(p.features[split == "train"])
    np.testing.assert_array_equal(p.scaler.mean, reference.mean)
    np.testing.assert_array_equal(p.scaler.std, reference.std)
    np.testing.assert_array_equal(p.x, reference.transform(p.features))
    assert p.fingerprint == _fingerprint(cfg)
    [fold] = p.folds
    assert fold.rows.train.stop + cfg.horizon + cfg.embargo == fold.rows.val.start
    assert p.fold_x(0) is p.x and p.fold_scaler(0) is p.scaler


@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_blocks_cover_the_val_span_in_order(window):
    cfg = DataConfig(input_size=20, train_frac=0.4, val_frac=0.45, test_frac=0.15, folds=5, window=window)
    p, one = prepare(cfg), prepare(DataConfig(input_size=20, train_frac=0.4, val_frac=0.45, test_frac=0.15))
    gap = cfg.horizon + cfg.embargo
    # the val span of one fold, in rows and in samples, is cut into 5 blocks that follow one another
    assert [r for f in p.folds for r in f.rows.val] == list(one.folds[0].rows.val)
    np.testing.assert_array_equal(np.concatenate([f.val for f in p.folds]), one.ends["val"])
    assert max(len(f.rows.val) for f in p.folds) - min(len(f.rows.val) for f in p.folds) <= 1
    reports = [f.report for f in p.folds]
    assert all(later.min() > earlier.max() for earlier, later in zip(reports, reports[1:], strict=False))
    assert len(np.unique(np.concatenate(reports))) == sum(map(len, reports))  # no sample reported twice
    first_train = len(p.folds[0].rows.train)
    for fold in p.folds:
        half = len(fold.val) // 2
        np.testing.assert_array_equal(fold.select, fold.val[:half])
        np.testing.assert_array_equal(fold.report, fold.val[half + gap:])
        # the purge: the last train label (it looks `horizon` rows ahead) ends `embargo` + 1 rows before the block
        assert fold.rows.train.stop + gap == fold.rows.val.start
        assert fold.train.max() + cfg.horizon + cfg.embargo < fold.val.min()
        assert fold.select.max() + cfg.horizon + cfg.embargo < fold.report.min()
        if window == "rolling":  # as long as the first fold's train, in rows
            assert len(fold.rows.train) == first_train
        else:
            assert fold.rows.train.start == 0
        assert fold.rows.test == one.folds[0].rows.test
    last = p.folds[-1]
    for stage, ends in (("train", last.train), ("val", last.val), ("val_select", last.select),
                        ("val_report", last.report), ("test", one.ends["test"])):
        np.testing.assert_array_equal(p.ends[stage], ends)  # the run's stages are the last fold's
    np.testing.assert_array_equal(p.split == "train", np.isin(np.arange(len(p.split)), last.train_rows))
    assert p.fingerprint != one.fingerprint


def test_each_fold_is_scaled_on_its_own_train_rows(tmp_path):
    frame = synthetic_ohlcv(1500)
    path = tmp_path / "a.csv"
    frame.to_csv(path)
    cfg = DataConfig(path=str(path), input_size=20, horizon=2, embargo=3, train_frac=0.4, val_frac=0.45,
                     test_frac=0.15, folds=3)
    p = prepare(cfg)
    for k, fold in enumerate(p.folds):
        row = np.arange(len(p.features))
        rows = (row >= fold.train_rows.start) & (row < fold.train_rows.stop)
        assert fold.train_rows.stop == fold.rows.train.stop - p.warmup
        np.testing.assert_allclose(p.fold_scaler(k).mean, p.features[rows].mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(p.fold_scaler(k).std, p.features[rows].std(axis=0), rtol=1e-12)

    probe = frame.copy()
    block = p.index[p.folds[1].val[0]]  # the second fold's first val day: every price from it on changes
    probe.loc[probe.index >= block] *= 1.5
    probe.to_csv(tmp_path / "b.csv")
    q = prepare(DataConfig(**{**vars(cfg), "path": str(tmp_path / "b.csv")}))
    for k in (0, 1):
        fold = p.folds[k]
        np.testing.assert_array_equal(q.fold_scaler(k).mean, p.fold_scaler(k).mean)
        np.testing.assert_array_equal(q.fold_scaler(k).std, p.fold_scaler(k).std)
        np.testing.assert_array_equal(q.fold_x(k)[: fold.train_rows.stop], p.fold_x(k)[: fold.train_rows.stop])
        np.testing.assert_array_equal(q.y[fold.train], p.y[fold.train])
    assert not np.array_equal(q.fold_scaler(2).mean, p.fold_scaler(2).mean)


def test_fold_settings_are_checked():
    with pytest.raises(DataError, match="folds must be an integer >= 1, got 0"):
        DataConfig(folds=0).check()
    with pytest.raises(DataError, match="window must be one of expanding, rolling, got 'sliding'"):
        DataConfig(window="sliding").check()


def _summary(stdout: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in stdout.strip().splitlines())


def test_cli_shows_each_fold(run_cli):
    result = run_cli("datamodules", "--folds", 3, "--train-frac", 0.5, "--val-frac", 0.35)
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stdout)
    p = prepare(DataConfig(folds=3, train_frac=0.5, val_frac=0.35))
    assert summary["folds"] == "3 (expanding window)" and summary["fingerprint"] == p.fingerprint
    for k, fold in enumerate(p.folds, start=1):
        for part, ends in (("train", fold.train), ("val_select", fold.select), ("val_report", fold.report)):
            dates = p.index[ends]
            assert summary[f"fold{k}.{part}"] == (f"{dates[0].date()} .. {dates[-1].date()}, {len(ends)} "
                                                  f"samples, positive rate {p.y[ends].mean():.4f}")
    assert not any(key.startswith("fold") and "test" in key for key in summary)
    assert "test.positive_rate" not in summary
    assert summary["val.samples"] == str(len(p.folds[-1].val))


def test_cli_refuses_too_many_folds(run_cli):
    result = run_cli("datamodules", "--folds", 0)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: folds must be an integer >= 1, got 0\n"

    result = run_cli("datamodules", "--folds", 60, "--horizon", 5)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: --folds 60 is too many")
    fits = int(result.stderr.rsplit("the largest --folds that fits is ", 1)[1])
    assert 1 < fits < 60
    prepare(DataConfig(horizon=5, folds=fits))  # it fits, and one more does not
    with pytest.raises(DataError, match=f"--folds {fits + 1} is too many .* fits is {fits}$"):
        prepare(DataConfig(horizon=5, folds=fits + 1))


def test_a_study_stored_before_folds_resumes_with_one_fold():
    """A study definition without `data.folds`/`data.window` (stored before folds) reads as one fold: the
    same settings resume it, and K > 1 is refused by its fingerprint."""
    import optuna

    from hpo.study import OBJECTIVE, _check_definition
    from training.config import RunConfig

    def definition(cfg: RunConfig) -> dict[str, str]:
        return {**cfg.to_params(), "data.fingerprint": prepare(cfg.data).fingerprint, "objective": OBJECTIVE}

    base = RunConfig()
    study = optuna.create_study(study_name="before-folds", storage=optuna.storages.InMemoryStorage())
    StudyWriter(study).defined({k: v for k, v in definition(base).items()
                                       if k not in ("data.folds", "data.window")})
    _check_definition(study, definition(base))
    with pytest.raises(UserError, match="data.fingerprint"):
        _check_definition(study, definition(base.override({"data.folds": 3})))
