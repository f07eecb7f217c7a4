"""The audit's output: the short report (printed, the head of `report.md`), `report.md`, `report.json`, the
plots, and the audit run that holds them (`log_report`)."""

from __future__ import annotations

import json
import math
import os

import numpy as np

from hpo.audit.checks import EDGE, LARGE_GAP, MIN_TOP, Report
from hpo.audit.trials import TrialData, scored


def clean(obj):
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _f(x, fmt: str = ".4f") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def report_lines(name: str, report: Report) -> list[str]:
    """The short report (printed; the head of report.md)."""
    s = report.states
    lines = [f"study {name!r}: {s.total} trials, " + ", ".join(f"{n} {k}" for k, n in s.counts.items())]
    for reason, n in s.reasons.items():
        lines.append(f"  failed x{n}: {reason}")
    hits = report.boundary_hits
    lines.append(f"boundary hits: {len(hits) or 'none'}")
    for h in hits:
        lines.append(f"  {h.param}: {h.top_at_edge} of the top {h.top} trials at the {h.edge} edge of "
                     f"{h.range} ({h.share_of_all_at_edge:.0%} of all searched trials; permutation p "
                     f"{h.p_adjusted:.3f}, Holm over {h.family} parameter edges): widen the range there")
    o = report.overfit_gap
    if o.trials:
        lines.append(f"overfit gap (train - val_report AUROC at the best epoch, top {len(o.trials)} trials): median "
                     f"{_f(o.median_gap, '+.3f')}, max {_f(o.max_gap, '+.3f')}"
                     + (f"; above {LARGE_GAP}: trials {', '.join(map(str, o.large))}" if o.large else "")
                     + (f"; no best/train/auroc for trials {', '.join(map(str, o.missing))}" if o.missing else ""))
    imp = report.importances
    if imp.values and imp.beats_null:
        lines.append("importances (fANOVA) of the parameters whose effect beats chance (rank test, Holm over "
                     f"{len(imp.p_adjusted)}): " + ", ".join(
                         f"{k} {imp.values[k]:.2f} (p {imp.p_adjusted[k]:.3f})" for k in imp.beats_null[:4]))
    elif imp.values:
        lines.append(f"importances: no parameter's effect beats chance (rank test, Holm over {len(imp.p_adjusted)} "
                     "parameters); the fANOVA values in report.md are descriptive only")
    elif imp.note:
        lines.append(f"importances: {imp.note}")
    sus = report.suspicious
    lines.append(f"suspicious: {len(sus) or 'none'}")
    for f in sus:
        lines.append(f"  trial {f.trial} {f.check}: {f.detail}")
    b = report.by_budget
    for row in b.best:
        lines.append(f"budget {row.budget} {row.style}: best trial {row.best_trial} (objective "
                     f"{_f(row.objective)}) of {row.trials} trials: val_report AUROC {_f(row.val_auroc)} "
                     f"[{_f(row.ci_low)}, {_f(row.ci_high)}]")
    for p in b.pairs:
        verdict = ("no predictions" if p.distinguishable is None else
                   "distinguishable" if p.distinguishable else "not distinguishable")
        family = (f" ({b.correction} over {p.family} pairs: adjusted p {_f(p.p_adjusted, '.3f')})"
                  if p.family else "")
        lines.append(f"  best {p.a} - best {p.b} on val_report: {_f(p.diff, '+.4f')}, paired 95% CI "
                     f"[{_f(p.ci_low, '+.4f')}, {_f(p.ci_high, '+.4f')}]: {verdict}{family}")
    sel = report.selection
    if sel.null_p95 is not None:
        lines.append(f"selection: the best trial's {sel.objective} {sel.best_value:.4f} (trial "
                     f"{sel.best_trial}) {'exceeds' if sel.exceeds else 'does NOT exceed'} {sel.null_p95:.4f}, "
                     f"what the best of {sel.k} random scorers reaches on the same {sel.samples} labels "
                     f"(95th percentile; one per epoch evaluation of the {sel.trials} trials, an upper bound)")
    else:
        lines.append(f"selection: {sel.note or 'not computable'}")
    return lines


def markdown(name: str, report: Report) -> str:
    out = [f"# Audit of study `{name}`", "", "```", *report_lines(name, report), "```", ""]
    s = report.states
    out += ["## states", "", "| state | trials |", "|---|---:|", *[f"| {k} | {n} |" for k, n in s.counts.items()],
            ""]
    if s.failures:
        out += ["| failed trial | reason |", "|---:|---|",
                *[f"| {f.trial} | {f.reason.splitlines()[0][:300]} |" for f in s.failures], ""]
    out += ["## boundary_hits", "", "Searched parameters whose top trials (top decile of the completed searched "
            f"trials, at least {MIN_TOP}) sit at one edge of the range: the outer {EDGE:.0%} of a numeric range, "
            "the end value of a short integer range or an ordered choice; more of them than a random draw of the "
            "trials would put there (hypergeometric permutation p-value, Holm over every parameter edge tried, "
            "below 0.05).", ""]
    if report.boundary_hits:
        out += ["| param | edge | range | top at edge | share of all trials at edge | trials |",
                "|---|---|---|---|---|---|",
                *[f"| {h.param} | {h.edge} | {h.range} | {h.top_at_edge}/{h.top} | "
                  f"{h.share_of_all_at_edge:.0%} | {', '.join(map(str, h.trials))} |"
                  for h in report.boundary_hits]]
    else:
        out.append("None.")
    o = report.overfit_gap
    out += ["", "## overfit_gap", "", "| trial | train AUROC | val_report AUROC | gap | best epoch |",
            "|---:|---:|---:|---:|---:|",
            *[f"| {r.trial} | {_f(r.train_auroc)} | {_f(r.val_auroc)} | {_f(r.gap, '+.4f')} | "
              f"{_f(r.best_epoch, '.0f')} |" for r in o.trials]]
    imp = report.importances
    out += ["", "## importances", "", *(["fANOVA importances are descriptive; a parameter's effect beats chance only "
                                         "where the rank test's Holm-adjusted p is below 0.05.", "",
                                         "| param | fANOVA importance | adjusted p | beats chance |",
                                         "|---|---:|---:|---|",
                                         *[f"| {k} | {v:.3f} | {_f(imp.p_adjusted.get(k), '.3f')} | "
                                           f"{'yes' if k in imp.beats_null else 'no'} |"
                                           for k, v in imp.values.items()]]
                                        if imp.values else [imp.note or ""])]
    out += ["", "## suspicious", ""]
    out += (["| trial | check | detail |", "|---:|---|---|",
             *[f"| {f.trial} | {f.check} | {f.detail} |" for f in report.suspicious]]
            if report.suspicious else ["None."])
    b = report.by_budget
    out += ["", "## by_budget", "", "| budget | style | trials | best trial | objective | val_report AUROC | 95% CI |",
            "|---|---|---:|---:|---:|---:|---|",
            *[f"| {r.budget} | {r.style} | {r.trials} | {r.best_trial} | {_f(r.objective)} | "
              f"{_f(r.val_auroc)} | [{_f(r.ci_low)}, {_f(r.ci_high)}] |" for r in b.best], ""]
    if b.pairs:
        out += [f"The pairs are one family: distinguishable only where the {b.correction}-adjusted p-value "
                "is below 0.05.", "",
                "| best of | minus best of | difference | paired 95% CI | adjusted p | distinguishable |",
                "|---|---|---:|---|---:|---|",
                *[f"| {p.a} | {p.b} | {_f(p.diff, '+.4f')} | [{_f(p.ci_low, '+.4f')}, {_f(p.ci_high, '+.4f')}] "
                  f"| {_f(p.p_adjusted, '.3f')} "
                  f"| {'-' if p.distinguishable is None else 'yes' if p.distinguishable else 'no'} |"
                  for p in b.pairs]]
    out += ["", "## selection", "", "```", json.dumps(clean(report.selection.to_json()), indent=2), "```", ""]
    return "\n".join(out)


def figures(name: str, report: Report, trials: list[TrialData]) -> dict[str, object]:
    """audit/plots/*.png: optimisation history, importances, overfit gap, best per budget, boundary hits
    (drawn by `training.plotting`)."""
    from optuna.distributions import CategoricalDistribution

    from hpo.parent import reported_baseline, trial_points
    from training import plotting

    out = {}
    by_number = {d.number: d for d in trials}

    def baseline(numbers) -> plotting.Baseline | None:
        """The best baseline the trials' evidence names, when it is one and the same for all of them."""
        found = {reported_baseline(by_number[n].trial) for n in numbers if n in by_number}
        return found.pop() if len(found) == 1 else None

    points = trial_points([d.trial for d in trials])
    sel = report.selection
    if points:
        null = plotting.Null(sel.null_p95, sel.k, sel.folds) if sel.null_p95 is not None else None
        out["optimization_history"] = plotting.history_figure(f"{name}: optimisation history", points,
                                                              sel.objective or "objective", null)
    values = report.importances.values
    if values:
        out["importances"] = plotting.importances_figure(f"{name}: parameter importances", values,
                                                         "fANOVA importance")
    rows = [r for r in report.overfit_gap.trials if r.gap is not None]
    if rows:
        gaps = [plotting.GapPoint(r.trial, plotting.Estimate(r.val_auroc, *_ci(by_number.get(r.trial))),
                                  r.train_auroc) for r in rows]
        out["overfit_gap"] = plotting.gap_figure(
            f"{name}: top trials, train vs val_report AUROC at the best epoch", gaps,
            baseline([r.trial for r in rows]), "val_report AUROC, 95% CI", "train AUROC (best epoch)")
    best = [r for r in report.by_budget.best if r.val_auroc is not None]
    if best:
        out["by_budget"] = plotting.groups_figure(
            f"{name}: best trial (by objective) per budget and style, on val_report",
            [f"{r.budget}\n{r.style}" for r in best],
            [plotting.Estimate(r.val_auroc, r.ci_low, r.ci_high) for r in best],
            [baseline([r.best_trial]) for r in best],
            "budget and style", "val_report AUROC, 95% CI")
    hits = report.boundary_hits
    if hits:
        counted = scored(trials)
        panels = []
        for h in hits:
            shown = [d for d in counted if h.param in d.trial.params]
            categorical = isinstance(shown[0].trial.distributions[h.param], CategoricalDistribution)
            numeric = None if categorical else h.range
            panels.append(plotting.ParamPanel(
                h.param, h.edge, [d.trial.params[h.param] for d in shown], [d.trial.value for d in shown],
                log=numeric is not None and "log" in numeric, choices=h.range if categorical else None,
                bounds=None if numeric is None else (numeric[0], numeric[1])))
        out["boundary_hits"] = plotting.params_figure(f"{name}: parameters whose top trials sit at an edge", panels,
                                                      "objective")
    return out


def _ci(d: TrialData | None) -> tuple[float | None, float | None]:
    if d is None:
        return None, None
    return d.metric("best/val/auroc_ci_low"), d.metric("best/val/auroc_ci_high")


def log_report(name: str, shown: str, report: Report, trials: list[TrialData], parent_id: str | None) -> str:
    """The audit run (kind=audit, nested under the study's parent when it has one); returns its id."""
    from mlflow.tracking import MlflowClient

    from training import tracking

    client = MlflowClient()
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)  # `mlflow run`'s run becomes the audit run
    experiment = client.get_run(parent_id).info.experiment_id if parent_id else tracking.experiment_id()
    tags = {"kind": "audit", "study_name": name, "storage": shown,
            "mlflow.note.content": f"Audit of study `{name}`: see `audit/report.md`."}
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    run_id = launcher or client.create_run(experiment, run_name=f"{name}-audit").info.run_id
    client.update_run(run_id, name=f"{name}-audit")
    with tracking.ending(run_id):
        counts = report.states.counts
        metrics = {f"audit/trials/{k.lower()}": v for k, v in counts.items()}
        metrics |= {"audit/suspicious": len(report.suspicious), "audit/boundary_hits": len(report.boundary_hits)}
        if report.overfit_gap.median_gap is not None:
            metrics["audit/overfit_gap_median"] = report.overfit_gap.median_gap
        tracking.log_batch(run_id, metrics, params={"ci.correction": report.by_budget.correction}, tags=tags)
        client.log_text(run_id, markdown(name, report), "audit/report.md")
        client.log_text(run_id, json.dumps(clean(report.to_json()), indent=2, sort_keys=False), "audit/report.json")
        for key, figure in figures(name, report, trials).items():
            client.log_figure(run_id, figure, f"audit/plots/{key}.png")
    return run_id
