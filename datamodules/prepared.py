"""The whole data pipeline without Lightning or torch (so the CLI starts fast): source -> tier features ->
labels -> splits -> train-only scaling, as `Prepared` arrays plus the summary and export the CLI shows.

Split boundaries are computed over the labelled rows of the input (every OHLCV or table row but the last
`horizon`), before the features' warm-up is dropped: val and test hold the same dates for every tier and
context length, so their metrics compare. The warm-up and the first L-1 rows (context only, no sample
ends there) come out of the start of train.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules import sources, tiers
from datamodules.config import DataConfig
from datamodules.errors import DataError
from datamodules.features import realized_vol
from datamodules.folds import Fold, largest_fit, misfit, sample_ends, walk_forward
from datamodules.labels import make_labels
from datamodules.splits import PURGED, STAGES, Scaler

VOLATILITY_WINDOWS = (5, 20)
VAL_PARTS = ("val_select", "val_report")


@dataclass(frozen=True)
class Seen:
    """The rows a config could be chosen on: every source row up to the end of the last val label (`until`),
    their fingerprint, and the source file (resolved). Recorded on every run and study (`tags`), compared
    by promotion, whose test must come from the same rows followed by others."""

    source: str
    fingerprint: str
    until: str  # date of the last row a val label reads

    TAGS = ("data.source", "data.seen_fingerprint", "data.seen_until")

    def tags(self) -> dict[str, str]:
        return dict(zip(self.TAGS, (self.source, self.fingerprint, self.until), strict=True))

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Seen | None:
        """None for a run or study recorded before these tags existed."""
        return cls(*(tags[k] for k in cls.TAGS)) if all(k in tags for k in cls.TAGS) else None


@dataclass
class Prepared:
    config: DataConfig
    source: str  # the file read (for the embedded data: the file `arch` ships)
    source_rows: int
    source_dates: tuple[str, str]
    feature_names: list[str]
    index: pd.DatetimeIndex  # one per row below: past the warm-up, labelled
    features: np.ndarray  # [N, F] float64, unscaled
    x: np.ndarray  # [N, F] float32, scaled with train statistics
    y: np.ndarray  # [N] float32, 0/1
    split: np.ndarray  # [N] 'train' | 'val' | 'test' | 'purged'
    ends: dict[str, np.ndarray]  # per stage: the rows where its samples end (dataset order)
    volatility_rows: np.ndarray  # [N, 2] float64: realized vol 5d, 20d of the source Close
    scaler: Scaler
    folds: list[Fold]  # K walk-forward folds in date order; the last is the split of `x`, `ends`, `scaler`
    warmup: int
    data_fingerprint: str
    fingerprint: str
    cache: str  # 'hit', 'miss' or 'none' (tier file)
    seen: Seen
    rows: pd.DataFrame = field(repr=False)  # the validated source rows (OHLCV or feature table), in date order
    # every baseline's probabilities per (stage, seed); written only by `models.baselines.scores`
    baseline_scores: dict[tuple[str, int], dict[str, np.ndarray]] = field(default_factory=dict)
    views: dict[int, Prepared] = field(default_factory=dict, repr=False)  # `fold(k)`, built once each

    def check_test_labels(self) -> None:
        """Promotion's check (the one command that reads test labels): the test samples hold both classes."""
        if np.unique(self.labels("test")).size < 2:
            s = self.config
            raise DataError(f"threshold {s.threshold} within horizon {s.horizon} gives one class only in the test "
                            "samples: AUROC, the baselines and the intervals need rises and non-rises; choose "
                            "another --threshold or --horizon")

    def fingerprint_through(self, until: str) -> str:
        """`sources.fingerprint` of this data's rows up to and including the date `until`."""
        return sources.fingerprint(self.rows.loc[: pd.Timestamp(until)])

    def date_range(self, stage: str) -> tuple[str, str]:
        dates = self.dates(stage)
        return str(dates[0].date()), str(dates[-1].date())

    def dates(self, stage: str) -> pd.DatetimeIndex:
        return self.index[self._ends(stage)]

    def labels(self, stage: str) -> np.ndarray:
        return self.y[self._ends(stage)]

    def volatility(self, stage: str) -> np.ndarray:
        return self.volatility_rows[self._ends(stage)]

    def last_features(self, stage: str) -> np.ndarray:
        """[n, F] float64: the unscaled features at each sample's last day, in dataset order."""
        return self.features[self._ends(stage)]

    def fold_scaler(self, k: int) -> Scaler:
        """Fold k's scaler (0-based), fit on that fold's train rows only; the last fold's is `scaler`."""
        return self.fold(k).scaler

    def fold_x(self, k: int) -> np.ndarray:
        """[N, F] float32: every row scaled with fold k's scaler (row-major); the last fold's is `x`."""
        return self.fold(k).x

    def fold(self, k: int) -> Prepared:
        """Fold k (0-based) as the data of one run: a `Prepared` whose `x`, `split`, `ends` (train, val and its
        parts; test unchanged) and `scaler` are fold k's, with `folds` [fold k] and caches of its own. The last
        fold's is this `Prepared` itself (its split); each view is built once (its scaler fit once)."""
        if self.folds[k] is self.folds[-1]:
            return self
        if k not in self.views:
            fold = self.folds[k]
            scaler = fold.scaler(self.features)
            ends = {"train": fold.train, "val": fold.val, "test": self.ends["test"]}
            ends |= dict(zip(VAL_PARTS, (fold.select, fold.report), strict=True))
            self.views[k] = replace(self, x=np.ascontiguousarray(scaler.transform(self.features)),
                                    split=fold.rows.assignment()[self.warmup:], ends=ends, scaler=scaler,
                                    folds=[fold], baseline_scores={}, views={})
        return self.views[k]

    def _ends(self, stage: str) -> np.ndarray:
        if stage not in self.ends:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(self.ends)}")
        return self.ends[stage]

    def summary(self) -> dict[str, object]:
        s = self.config
        out: dict[str, object] = {
            "source": self.source,
            "tier": s.tier,
            "rows": self.source_rows,
            "date_range": " .. ".join(self.source_dates),
            "features": len(self.feature_names),
            "warmup_rows_dropped": self.warmup,
            "unlabelled_rows_dropped": s.horizon,
            "horizon": s.horizon,
            "threshold": s.threshold,
            "input_size": s.input_size,
            "embargo": s.embargo,
            "rows_used": len(self.index),
            "rows_purged": int((self.split == PURGED).sum()),
        }
        for stage in STAGES:
            labels = self.labels(stage)
            out[f"{stage}.rows"] = int((self.split == stage).sum())
            out[f"{stage}.samples"] = len(labels)
            if stage != "test":  # test labels are read by promotion only
                out[f"{stage}.positive_rate"] = round(float(labels.mean()), 4)
            out[f"{stage}.date_range"] = " .. ".join(self.date_range(stage))
        if s.folds > 1:
            out |= {"folds": f"{s.folds} ({s.window} window)"} | self._fold_summary()
        out |= {"feature_cache": self.cache, "data_fingerprint": self.data_fingerprint,
                "fingerprint": self.fingerprint}
        return out

    def _fold_summary(self) -> dict[str, str]:
        """Per fold (numbered from 1) and part: dates, samples and positive rate (train and val only)."""
        out = {}
        for k, fold in enumerate(self.folds, start=1):
            for part, ends in (("train", fold.train), *zip(VAL_PARTS, (fold.select, fold.report), strict=True)):
                dates = self.index[ends]
                out[f"fold{k}.{part}"] = (f"{dates[0].date()} .. {dates[-1].date()}, {len(ends)} samples, "
                                          f"positive rate {self.y[ends].mean():.4f}")
        return out

    def frame(self) -> pd.DataFrame:
        """Unscaled features, label (0/1; missing on test rows, which promotion alone reads) and split of every
        row past the warm-up that has a label."""
        out = pd.DataFrame(self.features, index=self.index, columns=self.feature_names)
        label = pd.Series(self.y.astype(np.int8), index=self.index, dtype="Int8").mask(self.split == "test")
        return out.assign(label=label, split=self.split.astype(str))


def prepare(cfg: DataConfig, cache_dir: str | None = None) -> Prepared:
    """Run the pipeline; every problem with the input or the settings raises `DataError`.

    The result depends on the data settings (not on `batch_size`) and the input file only, so it is kept
    for the process: a study's trials, an ablation's cells and a promotion's seeds prepare once. Callers
    must not modify the arrays."""
    cfg.check()
    key = _memo_key(cfg, cache_dir)
    if key not in _MEMO:
        _MEMO.clear()  # one data set at a time: a process rarely switches, and a200 arrays are large
        _MEMO[key] = _prepare(cfg, cache_dir)
    return _MEMO[key]


_MEMO: dict[tuple, Prepared] = {}


def _memo_key(cfg: DataConfig, cache_dir: str | None) -> tuple:
    path = Path(cfg.path) if cfg.path is not None else None
    stat = path.stat() if path is not None and path.is_file() else None
    file_key = None if stat is None else (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    return (replace(cfg, batch_size=1), str(tiers.cache_dir(cache_dir)), file_key)


def _check_layout(s: DataConfig, folds: list, ends: dict[str, np.ndarray], labels: np.ndarray, warmup: int,
                  rows: int) -> None:
    """A `DataError` for a layout the settings cannot have: more folds than the val span holds, an empty
    split, or one class only in train or a val part (test labels are read by promotion only,
    `Prepared.check_test_labels`)."""
    y = labels[warmup:]
    if s.folds > 1 and (reason := misfit(folds, y)):
        fits = largest_fit(len(labels), warmup, s, y)
        raise DataError(f"--folds {s.folds} is too many for the val span: {reason}; "
                        + (f"the largest --folds that fits is {fits}" if fits else
                           "not even --folds 1 fits (run it to see why)"))
    if any(len(e) == 0 for e in ends.values()):
        raise DataError(
            f"too few rows for tier {s.tier} with input size {s.input_size}: {rows} rows leave "
            f"{', '.join(f'{len(e)} {stage}' for stage, e in ends.items())} samples; needed: warm-up "
            f"({warmup}) + context ({s.input_size}) + horizon ({s.horizon}) + 2 purge gaps "
            f"({s.horizon + s.embargo} each) + three non-empty splits (val in two parts)"
        )
    one_class = [stage for stage in ("train", *VAL_PARTS) if np.unique(y[ends[stage]]).size < 2]
    if one_class:
        raise DataError(f"threshold {s.threshold} within horizon {s.horizon} gives one class only in the "
                        f"{', '.join(one_class)} samples: AUROC, the baselines and the intervals need rises and "
                        "non-rises in every split; choose another --threshold or --horizon")


def _prepare(s: DataConfig, cache_dir: str | None) -> Prepared:
    build = None
    if s.tier == tiers.FILE_TIER:
        source = Path(s.path)
        table = sources.load_feature_table(source)
        all_features, high, close = table.features, table.high, table.close
        tier_fingerprint = hashlib.sha256("\x1f".join(all_features.columns).encode()).hexdigest()
    else:
        source = Path(s.path) if s.path is not None else sources.embedded_path()
        ohlcv = sources.load_ohlcv(source)
        high, close = ohlcv["High"].to_numpy(), ohlcv["Close"].to_numpy()
        build = tiers.build_tier(ohlcv, s.tier, cache_dir, save=False)
        all_features, tier_fingerprint = build.features, tiers.tier_fingerprint(s.tier)
    raw = table.features if build is None else ohlcv
    data_fingerprint = sources.fingerprint(raw)

    feature_frame, warmup = tiers.drop_warmup(all_features)
    labels = make_labels(high, close, s.horizon, s.threshold)
    folds = walk_forward(len(labels), warmup, s)
    n = len(labels) - warmup  # rows past the warm-up that have a label
    last = folds[-1]  # the run's split (the only fold when K = 1)
    split = last.rows.assignment()[warmup:]
    ends = {"train": last.train, "val": last.val, "test": sample_ends(last.rows.test, warmup, s.input_size)}
    ends |= dict(zip(VAL_PARTS, (last.select, last.report), strict=True))
    _check_layout(s, folds, ends, labels.y, warmup, len(close))
    y = labels.y[warmup:]
    values = feature_frame.to_numpy(dtype=np.float64)[:n]
    scaler = last.scaler(values)
    # realized vol from the first row on (shorter windows at the start); row 0 has no return: 0
    volatility = np.column_stack([realized_vol(close, w, min_periods=1) for w in VOLATILITY_WINDOWS])
    target = f"{s.horizon}:{s.threshold}:{s.train_frac}:{s.val_frac}:{s.test_frac}:{s.embargo}"
    target += f":{s.folds}:{s.window}" if s.folds > 1 else ""  # K = 1: the one layout of before folds
    if build is not None:
        build.save()
    last_read = warmup + int(ends["val"][-1]) + s.horizon  # the source row of the last val label's end
    seen = Seen(str(source.resolve()), sources.fingerprint(raw.iloc[: last_read + 1]),
                str(raw.index[last_read].date()))
    return Prepared(
        config=s,
        source=str(source.resolve()),
        source_rows=len(close),
        source_dates=(str(all_features.index[0].date()), str(all_features.index[-1].date())),
        feature_names=[str(c) for c in feature_frame.columns],
        index=feature_frame.index[:n],
        features=values,
        x=np.ascontiguousarray(scaler.transform(values)),  # row-major: windows are row slices
        y=y.astype(np.float32),
        split=split,
        ends=ends,
        volatility_rows=np.nan_to_num(volatility[warmup : warmup + n], nan=0.0),
        scaler=scaler,
        folds=folds,
        warmup=warmup,
        data_fingerprint=data_fingerprint,
        fingerprint=hashlib.sha256(f"{data_fingerprint}:{tier_fingerprint}:{target}".encode()).hexdigest(),
        cache="none" if build is None else ("hit" if build.from_cache else "miss"),
        seen=seen,
        rows=raw,
    )
