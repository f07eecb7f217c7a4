"""The ablation's summary: one row per model and input size from the cells' val predictions (each model's
best input size chosen on the select part, everything shown measured on the report part), the studentized
block-bootstrap intervals over dates of the seeds' mean AUROC, the paired differences, the markdown table,
the plot, and what the parent run logs. Over K walk-forward folds (`data.folds` K > 1) a row's AUROC is the
mean over folds of each fold's, its interval resampled within folds (`models.intervals.FoldBootstrap`; one
split is the K = 1 case, on `PairedBootstrap`), with a per-fold table beside it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from conventions.errors import UserError
from hpo.ablation.plan import Cell, Plan
from models.intervals import CORRECTION

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

    def markdown(self, name: str) -> str:
        return table_markdown(self, name)

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


def summarise(plan: Plan, runs: dict[Cell, str], *, n_boot: int = N_BOOT,
              predictions: Callable[[str], dict[str, pd.DataFrame]] = cell_predictions) -> Summary:
    """The table from the cells' val predictions. Each row's seed-mean AUROC on the select part of val
    (`select_auroc`) chooses each model's best input size and runner-up; everything shown is measured on
    the report part, which chooses nothing: one block index matrix over the report dates shared by every
    cell, per row the seeds' mean AUROC studentized on it, and the baselines (fit on train at the row's
    input size, with the row's seeds) on the same resamples. Over K walk-forward folds each of these is the
    mean over folds of each fold's (its baselines fit on its train rows), the index matrix resamples each
    fold's report dates within that fold (`FoldBootstrap`), and `Summary.folds` holds each row per fold."""
    from datamodules.prepared import prepare
    from models import baselines as baseline_set
    from models.intervals import BEATS, SAYS, FoldBootstrap, Setting, best_of, corrected_verdict, holm, rank_auroc
    from training.train import REPORT, SELECT

    frames = {cell: predictions(run_id) for cell, run_id in runs.items()}
    if not frames:
        empty = pd.DataFrame(columns=COLUMNS)
        return Summary(empty, ["no cell has finished"], {}, ("", ""), 0, 0, n_boot, "")
    n_folds = plan.data.folds
    folds = range(n_folds)  # 0-based; a one-split run's predictions are fold 1
    parts = {stage: [_shared(frames, stage, k + 1) for k in folds] for stage in (SELECT, REPORT)}
    views = [prepare(plan.data).fold(k) for k in folds]
    for k, (dates, labels) in enumerate(parts[REPORT]):
        if not (views[k].dates(REPORT).equals(dates) and np.array_equal(views[k].labels(REPORT), labels)):
            raise RuntimeError(f"the cells' report dates or labels of fold {k + 1} differ from the data's")
    # the labels' dependence measured on each fold's train labels: a longer history of them, ending before val
    histories = [v.labels("train") for v in views]
    if n_folds == 1:
        boot = Setting(plan.data.horizon, histories[0], CI_SEED, LEVEL).paired(parts[REPORT][0][1], n_boot)
        blocks, fold_boots = [boot.block], [boot]
    else:
        boot = FoldBootstrap([labels for _, labels in parts[REPORT]], horizon=plan.data.horizon,
                             histories=histories, n_boot=n_boot, seed=CI_SEED, level=LEVEL)
        blocks, fold_boots = boot.blocks, boot.folds

    def resample(scores: list[np.ndarray]):
        """Each fold's scores ([seeds, n_k]) on the summary's one index matrix: the mean over folds."""
        return boot.resample(scores) if n_folds > 1 else boot.resample(scores[0])

    baselines: dict[tuple[int, int], dict[str, list[np.ndarray]]] = {}  # per fold
    select_auroc: dict[tuple[int, int], dict[str, float]] = {}  # chooses each row's best baseline
    for size, seed in sorted({(c.input_size, c.seed) for c in frames}):  # size first: one prepare per size
        data = prepare(replace(plan.data, input_size=size))
        baselines[size, seed], chosen = {}, []
        for k in folds:
            view, dates = data.fold(k), parts[REPORT][k][0]
            where = pd.Series(np.arange(len(view.dates(REPORT))), index=view.dates(REPORT)).reindex(dates)
            if where.isna().any():
                raise RuntimeError(f"the baselines at input size {size} miss {int(where.isna().sum())} report dates")
            for name, s in baseline_set.scores(view, REPORT, seed).items():
                baselines[size, seed].setdefault(name, []).append(s[where.to_numpy(dtype=int)])
            on = baseline_set.CHOOSE_ON
            chosen.append({name: float(rank_auroc(view.labels(on), s))
                           for name, s in baseline_set.scores(view, on, seed).items()})
        select_auroc[size, seed] = {name: float(np.mean([c[name] for c in chosen])) for name in chosen[0]}

    def probabilities(cells: list[Cell], stage: str, k: int) -> np.ndarray:
        dates = parts[stage][k][0]
        return np.stack([_in_fold(frames[c][stage], k + 1)["probability"].reindex(dates).to_numpy(dtype=float)
                         for c in cells])

    def mean_auroc(stage: str, probs: list[np.ndarray]) -> np.ndarray:
        """[seeds] each seed's AUROC on `stage`, the mean over folds."""
        return np.mean([rank_auroc(parts[stage][k][1], probs[k]) for k in folds], axis=0)

    rows, samples, family = [], {}, {}  # family: the p-value of every verdict the summary states
    fold_rows = []
    for model in plan.models:
        for size in plan.input_sizes:
            cells = [c for c in frames if c.model == model and c.input_size == size]
            cells.sort(key=lambda c: c.seed)
            row: dict[str, object] = {"model": model, "input_size": size, "seeds": len(cells)}
            if not cells:
                rows.append(row)
                continue
            probs = [probabilities(cells, REPORT, k) for k in folds]
            mean = resample(probs)
            base = {name: resample([np.stack([baselines[size, c.seed][name][k] for c in cells]) for k in folds])
                    for name in baselines[size, cells[0].seed]}
            best = best_of({n: float(np.mean([select_auroc[size, c.seed][n] for c in cells])) for n in base})
            diff = boot.interval(mean - base[best])
            family["baseline", model, size] = boot.pvalue(mean - base[best])
            samples[model, size] = mean
            select = [probabilities(cells, SELECT, k) for k in folds]
            row |= {
                "select_auroc": float(np.mean(mean_auroc(SELECT, select))),
                "val_auroc": mean.point,
                **dict(zip(("val_auroc_ci_low", "val_auroc_ci_high"), boot.interval(mean), strict=True)),
                "seed_aurocs": " ".join(f"{a:.4f}" for a in mean_auroc(REPORT, probs)), "best_baseline": best,
                "baseline_auroc": base[best].point,
                **dict(zip(("baseline_ci_low", "baseline_ci_high"), boot.interval(base[best]), strict=True)),
                "diff_ci_low": diff[0], "diff_ci_high": diff[1],
                "run_ids": " ".join(runs[c] for c in cells),
            }
            rows.append(row)
            if n_folds > 1:  # each fold's AUROC with its interval on that fold's columns of the index matrix
                fold_rows += [{"model": model, "input_size": size, "fold": k + 1, "val_auroc": r.point,
                               **dict(zip(("val_auroc_ci_low", "val_auroc_ci_high"), fb.interval(r), strict=True)),
                               "best_baseline": best, "baseline_auroc": b.point}
                              for k, (r, b, fb) in enumerate(zip(mean.folds, base[best].folds, fold_boots,
                                                                 strict=True))]
    table = pd.DataFrame(rows, columns=COLUMNS)

    def ranked(model: str) -> pd.DataFrame:
        return table[(table["model"] == model) & (table["seeds"] > 0)].sort_values(
            ["select_auroc", "input_size"], ascending=[False, True])

    for model in plan.models:  # each model's best input size against its runner-up
        done = ranked(model)
        if len(done) > 1:
            size, other = int(done.iloc[0]["input_size"]), int(done.iloc[1]["input_size"])
            family["runner_up", model] = boot.pvalue(samples[model, size] - samples[model, other])
    adjusted = holm(family)
    finished = (table["seeds"] > 0).to_numpy()
    table["diff_p_adjusted"] = [adjusted["baseline", m, s] if ok else math.nan
                                for m, s, ok in zip(table["model"], table["input_size"], finished, strict=True)]
    table["vs_baseline"] = [corrected_verdict(lo, hi, p, LEVEL) if ok else None for lo, hi, p, ok in zip(
        table["diff_ci_low"], table["diff_ci_high"], table["diff_p_adjusted"], finished, strict=True)]

    report = "val_report" if n_folds == 1 else f"val_report (mean over {n_folds} folds)"
    lines, best_of = [], {}
    for model in plan.models:
        done = ranked(model)
        if done.empty:
            lines.append(f"{model}: no cell finished")
            continue
        top = done.iloc[0]
        size = int(top["input_size"])
        info: dict[str, object] = {"input_size": size, "select_auroc": float(top["select_auroc"]),
                                   "val_auroc": float(top["val_auroc"])}
        seeds = int(top["seeds"])
        line = (f"{model}: best at {size}d on val_select (AUROC {top['select_auroc']:.3f}, {seeds} "
                f"seed{'s' if seeds > 1 else ''}); on {report}, which chose nothing: {top['val_auroc']:.3f} "
                f"[{top['val_auroc_ci_low']:.3f}, {top['val_auroc_ci_high']:.3f}]")
        if len(done) > 1:
            second = done.iloc[1]
            other = int(second["input_size"])
            low, high = boot.interval(samples[model, size] - samples[model, other])
            p = adjusted["runner_up", model]
            found = corrected_verdict(low, high, p, LEVEL) == BEATS
            info |= {"runner_up": other, "runner_up_val_auroc": float(second["val_auroc"]),
                     "diff": float(top["val_auroc"] - second["val_auroc"]), "diff_ci_low": low, "diff_ci_high": high,
                     "p_adjusted": p, "distinguishable": found}
            line += (f"; runner-up on val_select {other}d ({second['val_auroc']:.3f} on val_report): difference "
                     f"{top['val_auroc'] - second['val_auroc']:+.3f}, paired 95% CI [{low:+.3f}, {high:+.3f}], "
                     f"Holm-adjusted p {p:.3f} over the summary's {len(family)} verdicts: "
                     + ("distinguishable" if found else "NOT distinguishable"))
        else:
            line += "; the only input size with a finished cell"
        line += (f"; against the best baseline ({top['best_baseline']} {top['baseline_auroc']:.3f}) it "
                 f"{SAYS[top['vs_baseline']]} it (paired 95% CI [{top['diff_ci_low']:+.3f}, "
                 f"{top['diff_ci_high']:+.3f}], Holm-adjusted p {top['diff_p_adjusted']:.3f})")
        best_of[model] = info
        lines.append(line)
    spans = tuple(FoldSpan(k + 1, _span(dates), len(dates), block)
                  for k, ((dates, _), block) in enumerate(zip(parts[REPORT], blocks, strict=True)))
    first, last = parts[REPORT][0][0][0], parts[REPORT][-1][0][-1]
    return Summary(table, lines, best_of, (str(first.date()), str(last.date())), sum(s.n_dates for s in spans),
                   max(blocks), n_boot, boot.method, spans if n_folds > 1 else (),
                   pd.DataFrame(fold_rows, columns=FOLD_COLUMNS))


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


def _cell_text(value: float, low: float, high: float) -> str:
    return "-" if pd.isna(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def table_markdown(summary: Summary, name: str) -> str:
    t = summary.table
    sizes = sorted(t["input_size"].unique())
    k = len(summary.spans)
    scope = (f"Val AUROC on the report part of val: {summary.n_dates} dates ({summary.dates[0]} .. "
             f"{summary.dates[1]}), the same for every cell. The other part of val (val_select) chose each run's "
             "epoch and each model's best input size and runner-up (`select AUROC`); the report part chose nothing. "
             "A row is the mean over its seeds' runs. " if not k else
             f"Val AUROC on the report parts of {k} walk-forward folds: {summary.n_dates} dates in all "
             f"({summary.dates[0]} .. {summary.dates[1]}; each fold's below), the same for every cell, whose run "
             "trains one model per fold on the rows before the fold's val block (baselines too). The other part of "
             "each fold's val block (val_select) chose that fold's epoch, and its mean over folds each model's best "
             "input size and runner-up (`select AUROC`); the report parts chose nothing. A row is the mean over its "
             "seeds' runs of the mean over folds of each fold's AUROC. ")
    resampling = (f"over the dates (block length {summary.block}, " if not k else
                  "over the dates within each fold, blocks never crossing a fold (block length by fold "
                  f"{', '.join(str(f.block) for f in summary.spans)}; ")
    out = [
        f"# Context-length ablation `{name}`",
        "",
        scope + f"Intervals: {LEVEL:.0%} studentized stationary block bootstrap (bootstrap-t) {resampling}"
        f"{summary.n_boot} resamples, one index matrix for every row) of the "
        "seeds' mean AUROC: they cover date sampling for these seeds, not the spread between seeds, which "
        "`seed_aurocs` shows. The best baseline is the one with the "
        "highest AUROC on val_select at that input size (fit on train; chosen as the model's input size is), "
        "compared on the same report dates; `model - baseline` is the paired interval "
        "of the difference. An interval that contains 0 is not a finding, and every verdict here (each row against "
        "its best baseline, each model's best input size against its runner-up) is one of a family: a finding "
        "only where its Holm-adjusted p-value (bootstrap-t, on the one index matrix) is below "
        f"{1 - LEVEL:.2f} (`ci.correction` {CORRECTION}).",
        "",
        "## Summary",
        "",
        *[f"- {line}" for line in summary.lines],
        "",
        "## Val AUROC by input size (mean over seeds [95% CI])",
        "",
        "| model | " + " | ".join(f"{s}d" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for model in dict.fromkeys(t["model"]):
        cells = []
        for size in sizes:
            row = t[(t["model"] == model) & (t["input_size"] == size)].iloc[0]
            cells.append(_cell_text(row["val_auroc"], row["val_auroc_ci_low"], row["val_auroc_ci_high"]))
        out.append(f"| {model} | " + " | ".join(cells) + " |")
    baseline_cells = []
    for size in sizes:
        rows = t[(t["input_size"] == size) & (t["seeds"] > 0)]
        if rows.empty:
            baseline_cells.append("-")
            continue
        row = rows.iloc[0]
        baseline_cells.append(f"{row['best_baseline']} "
                              + _cell_text(row["baseline_auroc"], row["baseline_ci_low"], row["baseline_ci_high"]))
    out += ["| best baseline | " + " | ".join(baseline_cells) + " |", "", *fold_table(summary), "## All rows", "",
            "| model | input size | seeds | select AUROC | val AUROC | 95% CI | per seed | best baseline | "
            "baseline AUROC | model - baseline 95% CI | vs baseline |",
            "|---|---:|---:|---:|---:|---|---|---|---:|---|---|"]
    for _, r in t.iterrows():
        if not r["seeds"]:
            out.append(f"| {r['model']} | {r['input_size']} | 0 | - | - | - | - | - | - | - | - |")
            continue
        out.append(f"| {r['model']} | {r['input_size']} | {r['seeds']} | {r['select_auroc']:.3f} | "
                   f"{r['val_auroc']:.3f} | "
                   f"[{r['val_auroc_ci_low']:.3f}, {r['val_auroc_ci_high']:.3f}] | {r['seed_aurocs']} | "
                   f"{r['best_baseline']} | {r['baseline_auroc']:.3f} | "
                   f"[{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}] | {r['vs_baseline']} |")
    return "\n".join(out) + "\n"


def fold_table(summary: Summary) -> list[str]:
    """Over walk-forward folds: each row's report AUROC per fold (mean over seeds, its interval on the fold's
    columns of the index matrix) beside the row's best baseline on that fold; nothing for one split."""
    if not summary.spans:
        return []
    out = [f"## Val AUROC per fold (mean over seeds [{LEVEL:.0%} CI within the fold], the row's best baseline; "
           "fold: its report dates, samples)", "",
           "| model | input size | " + " | ".join(f.header() for f in summary.spans) + " | mean over folds |",
           "|---|---:|" + "---|" * (len(summary.spans) + 1)]
    folds = summary.folds
    for _, r in summary.table[summary.table["seeds"] > 0].iterrows():
        mine = folds[(folds["model"] == r["model"]) & (folds["input_size"] == r["input_size"])].sort_values("fold")
        cells = [f"{_cell_text(f['val_auroc'], f['val_auroc_ci_low'], f['val_auroc_ci_high'])}, "
                 f"{f['best_baseline']} {f['baseline_auroc']:.3f}" for _, f in mine.iterrows()]
        cells.append(f"{_cell_text(r['val_auroc'], r['val_auroc_ci_low'], r['val_auroc_ci_high'])}, "
                     f"{r['best_baseline']} {r['baseline_auroc']:.3f}")
        out.append(f"| {r['model']} | {r['input_size']} | " + " | ".join(cells) + " |")
    return [*out, ""]


def plot(summary: Summary, name: str):
    """Val AUROC against input size per model with its interval, the best baseline at each size as a band
    (drawn by `training.plotting`)."""
    from training import plotting

    t = summary.table[summary.table["seeds"] > 0]
    series = {model: {int(r["input_size"]): plotting.Estimate(r["val_auroc"], r["val_auroc_ci_low"],
                                                             r["val_auroc_ci_high"])
                      for _, r in t[t["model"] == model].iterrows()}
              for model in dict.fromkeys(t["model"])}
    best = t.sort_values("baseline_auroc", ascending=False).drop_duplicates("input_size")
    baselines = {int(r["input_size"]): plotting.Baseline(r["best_baseline"], plotting.Estimate(
        r["baseline_auroc"], r["baseline_ci_low"], r["baseline_ci_high"])) for _, r in best.iterrows()}
    over = (f"mean over seeds on val_report, {LEVEL:.0%} studentized block-bootstrap intervals over dates"
            if not summary.spans else f"mean over {len(summary.spans)} walk-forward folds and seeds on val_report, "
            f"{LEVEL:.0%} studentized block-bootstrap intervals within folds")
    return plotting.curves_figure(f"{name}: {over}", series, baselines, "input size (days)",
                                  "val AUROC (report part), 95% CI")


def fold_plot(summary: Summary, name: str):
    """Over walk-forward folds: each row's report AUROC per fold with its interval (drawn by
    `training.plotting`); the folds' report dates in the x labels."""
    from training import plotting

    folds = summary.folds
    series = {f"{model} L{size}": {int(r["fold"]): plotting.Estimate(r["val_auroc"], r["val_auroc_ci_low"],
                                                                   r["val_auroc_ci_high"])
                                   for _, r in rows.iterrows()}
              for (model, size), rows in folds.groupby(["model", "input_size"], sort=False)}
    fig = plotting.curves_figure(f"{name}: each row per walk-forward fold on val_report (mean over seeds), "
                                 f"{LEVEL:.0%} intervals within the fold", series, {},
                                 "walk-forward fold (its val_report dates)", "val AUROC (report part), 95% CI")
    fig.axes[0].set_xticks([f.fold for f in summary.spans],
                           [f"fold {f.fold}\n{f.dates[0]}\n{f.dates[1]}" for f in summary.spans])
    return fig


def log_summary(parent_id: str, plan: Plan, summary: Summary) -> None:
    from mlflow.tracking import MlflowClient

    from training import tracking

    client = MlflowClient()
    client.log_text(parent_id, summary.table.to_csv(index=False), "ablation/table.csv")
    markdown = summary.markdown(plan.name)
    client.log_text(parent_id, markdown, "ablation/table.md")
    client.log_figure(parent_id, plot(summary, plan.name), "ablation/plot.png")
    if summary.spans:
        client.log_text(parent_id, summary.folds.to_csv(index=False), "ablation/folds.csv")
        client.log_figure(parent_id, fold_plot(summary, plan.name), "ablation/plot_by_fold.png")
    metrics = {f"{r['model']}/L{r['input_size']}/fold/{r['fold']}/val/auroc": r["val_auroc"]
               for _, r in summary.folds.iterrows()}
    for _, r in summary.table[summary.table["seeds"] > 0].iterrows():
        prefix = f"{r['model']}/L{r['input_size']}/val"
        metrics |= {f"{prefix}/auroc": r["val_auroc"], f"{prefix}/auroc_ci_low": r["val_auroc_ci_low"],
                    f"{prefix}/auroc_ci_high": r["val_auroc_ci_high"],
                    f"{r['model']}/L{r['input_size']}/val_select/auroc": r["select_auroc"]}
    tags = {f"best_input_size.{m}": str(b["input_size"]) for m, b in summary.best.items()}
    tags |= {f"distinguishable.{m}": str(b["distinguishable"]).lower() for m, b in summary.best.items()
             if "distinguishable" in b}
    note = markdown.split("## All rows")[0]
    tags["mlflow.note.content"] = note[:7000]
    tracking.log_batch(parent_id, metrics, params={"ci.method": summary.method, "ci.level": LEVEL,
                                                   "ci.n_boot": summary.n_boot, "ci.seed": CI_SEED,
                                                   "ci.correction": CORRECTION}, tags=tags)
    tracking.log_batch(parent_id, tags={"ci.block_length": summary.blocks})
