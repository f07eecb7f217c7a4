"""The ablation's summary: one row per model and input size from the cells' val predictions (each model's
best input size chosen on the select part, everything shown measured on the report part), the studentized
block-bootstrap intervals over dates of the seeds' mean AUROC, the paired differences and the verdicts,
Holm-corrected as one family (shown by `hpo.ablation.table`). Over K walk-forward folds (`data.folds` K > 1)
a row's AUROC is the mean over folds of each fold's, its interval resampled within folds on one
`models.intervals.FoldBootstrap` (one split is its K = 1 case), with each row per fold beside it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from conventions.errors import UserError
from hpo.ablation.plan import Cell, Plan

N_BOOT = 1000
LEVEL = 0.95
CI_SEED = 0  # the one index matrix of the summary: the same resamples for every row


@dataclass(frozen=True)
class FoldSpan:
    """One walk-forward fold's report part, as the summary reads it."""

    fold: int  # 1 .. K
    dates: tuple[str, str]
    n_dates: int
    block: int  # its bootstrap block length

    def header(self) -> str:
        return f"fold {self.fold} ({self.dates[0]} .. {self.dates[1]}, {self.n_dates})"


@dataclass
class Summary:
    table: pd.DataFrame  # one row per (model, input size)
    lines: list[str]  # the verdict per model
    best: dict[str, dict[str, object]]  # model -> best input size, runner-up, paired interval, distinguishable
    dates: tuple[str, str]  # the first and last report date (over folds: of all folds)
    n_dates: int  # report samples (over folds: of all folds)
    block: int  # the bootstrap's block length (over folds: the longest)
    n_boot: int
    method: str  # the interval's, as `ci.method`
    spans: tuple[FoldSpan, ...] = ()  # over K > 1 walk-forward folds: each fold's report part
    folds: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FOLD_COLUMNS))  # row x fold (K > 1)

    @property
    def blocks(self) -> str:
        """The block length of each fold, comma-separated (`ci.block_length`)."""
        return ",".join(str(f.block) for f in self.spans) if self.spans else str(self.block)


COLUMNS = ["model", "input_size", "seeds", "select_auroc", "val_auroc", "val_auroc_ci_low", "val_auroc_ci_high",
           "seed_aurocs", "best_baseline", "baseline_auroc", "baseline_ci_low", "baseline_ci_high", "diff_ci_low",
           "diff_ci_high", "diff_p_adjusted", "vs_baseline", "run_ids"]
FOLD_COLUMNS = ["model", "input_size", "fold", "val_auroc", "val_auroc_ci_low", "val_auroc_ci_high", "best_baseline",
                "baseline_auroc"]


def cell_predictions(run_id: str) -> dict[str, pd.DataFrame]:
    """A cell's val predictions by part (`training.train.SELECT`, `REPORT`), each indexed by date: fold (1 for
    a one-split run; a walk-forward run's predictions stack its folds'), label, probability. The select part
    chooses each model's best input size; everything shown is measured on the report part, which chooses
    nothing."""
    from training.train import PARTS, val_predictions

    frame = val_predictions(run_id)
    if "part" not in frame:
        raise UserError(f"run {run_id} has val predictions of one part only (made before val was split into a "
                        "part that selects and one that reports): rerun the ablation under another --name")
    if "fold" not in frame:
        frame = frame.assign(fold=1)
    return {stage: frame[frame["part"] == part][["fold", "label", "probability"]] for stage, part in PARTS.items()}


@dataclass
class _Samples:
    """What every row of the summary is measured on: per part of val and per fold, the dates every cell has
    and their labels; the one index matrix over the report dates (within folds, `FoldBootstrap`; one split is
    its K = 1 case) and each fold's data (`Prepared.fold`)."""

    parts: dict[str, list[tuple[pd.DatetimeIndex, np.ndarray]]]  # SELECT/REPORT -> per fold (dates, labels)
    boot: object  # models.intervals.FoldBootstrap
    frames: dict[Cell, dict[str, pd.DataFrame]]

    @property
    def folds(self) -> range:
        return range(len(self.boot.folds))

    def probabilities(self, cells: list[Cell], stage: str, k: int) -> np.ndarray:
        """[seeds, n] the cells' probabilities on fold k's (0-based) dates of `stage`."""
        dates = self.parts[stage][k][0]
        return np.stack([_in_fold(self.frames[c][stage], k + 1)["probability"].reindex(dates).to_numpy(dtype=float)
                         for c in cells])

    def seed_aurocs(self, cells: list[Cell], stage: str) -> np.ndarray:
        """[seeds] each cell's AUROC on `stage`, the mean over folds."""
        from models.intervals import rank_auroc

        return np.mean([rank_auroc(self.parts[stage][k][1], self.probabilities(cells, stage, k))
                        for k in self.folds], axis=0)


def _samples(plan: Plan, frames: dict[Cell, dict[str, pd.DataFrame]], n_boot: int) -> _Samples:
    """The shared dates of both parts per fold, checked against the data's, and the report's index matrix; the
    labels' dependence measured on each fold's train labels (a longer history of them, ending before val)."""
    from datamodules.prepared import prepare
    from models.intervals import FoldBootstrap
    from training.train import REPORT, SELECT

    folds = range(plan.data.folds)  # 0-based; a one-split run's predictions are fold 1
    parts = {stage: [_shared(frames, stage, k + 1) for k in folds] for stage in (SELECT, REPORT)}
    views = [prepare(plan.data).fold(k) for k in folds]
    for k, (dates, labels) in enumerate(parts[REPORT]):
        if not (views[k].dates(REPORT).equals(dates) and np.array_equal(views[k].labels(REPORT), labels)):
            raise RuntimeError(f"the cells' report dates or labels of fold {k + 1} differ from the data's")
    boot = FoldBootstrap([labels for _, labels in parts[REPORT]], horizon=plan.data.horizon,
                         histories=[v.labels("train") for v in views], n_boot=n_boot, seed=CI_SEED, level=LEVEL)
    return _Samples(parts, boot, frames)


@dataclass
class _Baselines:
    """Per (input size, seed): each baseline's report scores per fold on the summary's dates, and its AUROC on
    the select parts (the mean over folds), which chooses a row's best baseline."""

    report: dict[tuple[int, int], dict[str, list[np.ndarray]]]
    select: dict[tuple[int, int], dict[str, float]]


def _baselines(plan: Plan, samples: _Samples) -> _Baselines:
    from datamodules.prepared import prepare
    from models import baselines as baseline_set
    from models.intervals import rank_auroc
    from training.train import REPORT

    out = _Baselines({}, {})
    for size, seed in sorted({(c.input_size, c.seed) for c in samples.frames}):  # size first: one prepare a size
        data = prepare(replace(plan.data, input_size=size))
        out.report[size, seed], chosen = {}, []
        for k in samples.folds:
            view, dates = data.fold(k), samples.parts[REPORT][k][0]
            where = pd.Series(np.arange(len(view.dates(REPORT))), index=view.dates(REPORT)).reindex(dates)
            if where.isna().any():
                raise RuntimeError(f"the baselines at input size {size} miss {int(where.isna().sum())} report dates")
            for name, s in baseline_set.scores(view, REPORT, seed).items():
                out.report[size, seed].setdefault(name, []).append(s[where.to_numpy(dtype=int)])
            on = baseline_set.CHOOSE_ON
            chosen.append({name: float(rank_auroc(view.labels(on), s))
                           for name, s in baseline_set.scores(view, on, seed).items()})
        out.select[size, seed] = {name: float(np.mean([c[name] for c in chosen])) for name in chosen[0]}
    return out


def _row(samples: _Samples, baselines: _Baselines, cells: list[Cell], runs: dict[Cell, str]) -> tuple[dict, object]:
    """One (model, input size)'s finished cells as a table row (less its Holm-adjusted columns) and the seeds'
    mean AUROC resampled on the index matrix (`Folded`)."""
    from models.intervals import best_of
    from training.train import REPORT, SELECT

    boot, size = samples.boot, cells[0].input_size
    mean = boot.resample([samples.probabilities(cells, REPORT, k) for k in samples.folds])
    base = {name: boot.resample([np.stack([baselines.report[size, c.seed][name][k] for c in cells])
                                 for k in samples.folds])
            for name in baselines.report[size, cells[0].seed]}
    best = best_of({n: float(np.mean([baselines.select[size, c.seed][n] for c in cells])) for n in base})
    diff = mean - base[best]
    row = {"select_auroc": float(np.mean(samples.seed_aurocs(cells, SELECT))), "val_auroc": mean.point,
           **dict(zip(("val_auroc_ci_low", "val_auroc_ci_high"), boot.interval(mean), strict=True)),
           "seed_aurocs": " ".join(f"{a:.4f}" for a in samples.seed_aurocs(cells, REPORT)), "best_baseline": best,
           "baseline_auroc": base[best].point,
           **dict(zip(("baseline_ci_low", "baseline_ci_high"), boot.interval(base[best]), strict=True)),
           **dict(zip(("diff_ci_low", "diff_ci_high"), boot.interval(diff), strict=True)),
           "diff_p": boot.pvalue(diff), "run_ids": " ".join(runs[c] for c in cells)}
    folds = [{"fold": k + 1, "val_auroc": r.point,  # each fold's AUROC, its interval on the fold's columns
              **dict(zip(("val_auroc_ci_low", "val_auroc_ci_high"), fb.interval(r), strict=True)),
              "best_baseline": best, "baseline_auroc": b.point}
             for k, (r, b, fb) in enumerate(zip(mean.folds, base[best].folds, boot.folds, strict=True))]
    return row | {"folds": folds}, mean


def summarise(plan: Plan, runs: dict[Cell, str], *, n_boot: int = N_BOOT,
              predictions: Callable[[str], dict[str, pd.DataFrame]] = cell_predictions) -> Summary:
    """The table from the cells' val predictions. Each row's seed-mean AUROC on the select part of val
    (`select_auroc`) chooses each model's best input size and runner-up; everything shown is measured on
    the report part, which chooses nothing: one block index matrix over the report dates shared by every
    cell, per row the seeds' mean AUROC studentized on it, and the baselines (fit on train at the row's
    input size, with the row's seeds) on the same resamples. Over K walk-forward folds each of these is the
    mean over folds of each fold's (its baselines fit on its train rows), the index matrix resamples each
    fold's report dates within that fold (`FoldBootstrap`), and `Summary.folds` holds each row per fold."""
    from training.train import REPORT

    frames = {cell: predictions(run_id) for cell, run_id in runs.items()}
    if not frames:
        return Summary(pd.DataFrame(columns=COLUMNS), ["no cell has finished"], {}, ("", ""), 0, 0, n_boot, "")
    samples = _samples(plan, frames, n_boot)
    baselines = _baselines(plan, samples)
    rows, means, fold_rows = [], {}, []
    for model in plan.models:
        for size in plan.input_sizes:
            cells = sorted((c for c in frames if c.model == model and c.input_size == size), key=lambda c: c.seed)
            row: dict[str, object] = {"model": model, "input_size": size, "seeds": len(cells)}
            if cells:
                more, means[model, size] = _row(samples, baselines, cells, runs)
                fold_rows += [{"model": model, "input_size": size, **f} for f in more.pop("folds")]
                row |= more
            rows.append(row)
    table = pd.DataFrame(rows, columns=[*COLUMNS, "diff_p"])
    lines, best = _verdicts(plan, table, means, samples.boot)
    boot, k_folds = samples.boot, plan.data.folds
    spans = tuple(FoldSpan(k + 1, _span(dates), len(dates), block)
                  for k, ((dates, _), block) in enumerate(zip(samples.parts[REPORT], boot.blocks, strict=True)))
    first, last = samples.parts[REPORT][0][0][0], samples.parts[REPORT][-1][0][-1]
    return Summary(table[COLUMNS], lines, best, (str(first.date()), str(last.date())), sum(s.n_dates for s in spans),
                   max(boot.blocks), n_boot, boot.method if k_folds > 1 else boot.folds[0].method,
                   spans if k_folds > 1 else (),
                   pd.DataFrame(fold_rows if k_folds > 1 else [], columns=FOLD_COLUMNS))


def _ranked(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """A model's finished rows, the best on val_select first (the shorter input size on ties)."""
    return table[(table["model"] == model) & (table["seeds"] > 0)].sort_values(
        ["select_auroc", "input_size"], ascending=[False, True])


def _verdicts(plan: Plan, table: pd.DataFrame, means: dict, boot) -> tuple[list[str], dict[str, dict[str, object]]]:
    """The family of the summary's verdicts (each row against its best baseline, each model's best input size
    against its runner-up) Holm-corrected: the table's `diff_p_adjusted` and `vs_baseline` columns set, and
    per model its line and its best (`Summary.lines`, `Summary.best`)."""
    from models.intervals import corrected_verdict, holm

    family = {("baseline", m, s): p for m, s, p, n in zip(table["model"], table["input_size"], table["diff_p"],
                                                           table["seeds"], strict=True) if n}
    for model in plan.models:
        done = _ranked(table, model)
        if len(done) > 1:
            size, other = int(done.iloc[0]["input_size"]), int(done.iloc[1]["input_size"])
            family["runner_up", model] = boot.pvalue(means[model, size] - means[model, other])
    adjusted = holm(family)
    finished = (table["seeds"] > 0).to_numpy()
    table["diff_p_adjusted"] = [adjusted["baseline", m, s] if ok else math.nan
                                for m, s, ok in zip(table["model"], table["input_size"], finished, strict=True)]
    table["vs_baseline"] = [corrected_verdict(lo, hi, p, LEVEL) if ok else None for lo, hi, p, ok in zip(
        table["diff_ci_low"], table["diff_ci_high"], table["diff_p_adjusted"], finished, strict=True)]
    lines, best = [], {}
    for model in plan.models:
        done = _ranked(table, model)
        if done.empty:
            lines.append(f"{model}: no cell finished")
            continue
        line, best[model] = _model_line(plan, model, done, means, boot, adjusted, len(family))
        lines.append(line)
    return lines, best


def _model_line(plan: Plan, model: str, done: pd.DataFrame, means: dict, boot, adjusted: dict,
                family: int) -> tuple[str, dict[str, object]]:
    """A model's verdict line and its best input size against its runner-up."""
    from models.intervals import BEATS, SAYS, corrected_verdict

    k_folds = plan.data.folds
    report = "val_report" if k_folds == 1 else f"val_report (mean over {k_folds} folds)"
    top = done.iloc[0]
    size, seeds = int(top["input_size"]), int(top["seeds"])
    info: dict[str, object] = {"input_size": size, "select_auroc": float(top["select_auroc"]),
                               "val_auroc": float(top["val_auroc"])}
    line = (f"{model}: best at {size}d on val_select (AUROC {top['select_auroc']:.3f}, {seeds} "
            f"seed{'s' if seeds > 1 else ''}); on {report}, which chose nothing: {top['val_auroc']:.3f} "
            f"[{top['val_auroc_ci_low']:.3f}, {top['val_auroc_ci_high']:.3f}]")
    if len(done) > 1:
        second = done.iloc[1]
        other = int(second["input_size"])
        low, high = boot.interval(means[model, size] - means[model, other])
        p = adjusted["runner_up", model]
        found = corrected_verdict(low, high, p, LEVEL) == BEATS
        info |= {"runner_up": other, "runner_up_val_auroc": float(second["val_auroc"]),
                 "diff": float(top["val_auroc"] - second["val_auroc"]), "diff_ci_low": low, "diff_ci_high": high,
                 "p_adjusted": p, "distinguishable": found}
        line += (f"; runner-up on val_select {other}d ({second['val_auroc']:.3f} on val_report): difference "
                 f"{top['val_auroc'] - second['val_auroc']:+.3f}, paired 95% CI [{low:+.3f}, {high:+.3f}], "
                 f"Holm-adjusted p {p:.3f} over the summary's {family} verdicts: "
                 + ("distinguishable" if found else "NOT distinguishable"))
    else:
        line += "; the only input size with a finished cell"
    line += (f"; against the best baseline ({top['best_baseline']} {top['baseline_auroc']:.3f}) it "
             f"{SAYS[top['vs_baseline']]} it (paired 95% CI [{top['diff_ci_low']:+.3f}, "
             f"{top['diff_ci_high']:+.3f}], Holm-adjusted p {top['diff_p_adjusted']:.3f})")
    return line, info


def _in_fold(frame: pd.DataFrame, fold: int) -> pd.DataFrame:
    return frame[frame["fold"] == fold]


def _span(dates: pd.DatetimeIndex) -> tuple[str, str]:
    return str(dates[0].date()), str(dates[-1].date())


def _shared(frames: dict[Cell, dict[str, pd.DataFrame]], stage: str,
            fold: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The dates of `stage` in `fold` (1 .. K) that every cell has, and their labels (the same in every cell,
    else a bug)."""
    dates = pd.DatetimeIndex(sorted(set.intersection(*(set(_in_fold(f[stage], fold).index)
                                                       for f in frames.values()))))
    labels = None
    for cell, frame in frames.items():
        cell_labels = _in_fold(frame[stage], fold)["label"].reindex(dates).to_numpy(dtype=float)
        if labels is None:
            labels = cell_labels
        elif not np.array_equal(labels, cell_labels):
            raise RuntimeError(f"{stage} labels of {cell.label()} differ from the other cells' on the same dates")
    return dates, labels
