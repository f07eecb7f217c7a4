"""What the ablation shows: its summary (`hpo.ablation.summary.Summary`) as the markdown table `table.md` (with
the per-fold table over walk-forward folds), the plots (drawn by `training.plotting`), and what the parent run
logs."""

from __future__ import annotations

import pandas as pd

from hpo.ablation.plan import Plan
from hpo.ablation.summary import CI_SEED, LEVEL, Summary
from models.intervals import CORRECTION


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
    markdown = table_markdown(summary, plan.name)
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
