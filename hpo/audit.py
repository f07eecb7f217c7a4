"""`python -m hpo.audit --study NAME [--storage URL] [--fail-on-findings]`: an audit of a study, from its
Optuna storage and its trials' MLflow runs, written as an MLflow run (tag `kind=audit`) nested under the
study's parent run: `audit/report.md`, `audit/report.json` and `audit/plots/*.png`.

Sections (the JSON's top-level keys):

- `states`: trials per state, and why each failed trial failed;
- `boundary_hits`: searched parameters whose top trials (the top decile of the completed, searched trials,
  at least 5) sit at one edge of their range: at least half of them in the outer tenth of the range (in
  its search scale; for an ordered choice of at least 3 values or an integer with at most 10, the end
  value itself). The range is probably too narrow on that side (or the edge is a hard limit: dropout 0);
  the forced grid and a transferred config sit at fixed values and are left out;
- `overfit_gap`: train against val AUROC of the top trials at their best epoch (`best/train/auroc`);
- `importances`: Optuna's fANOVA importances over the parameters every searched trial has, and the
  optimisation history;
- `suspicious`: an AUROC interval entirely below 0.5; a val AUROC more than `--high-margin` above the best
  baseline's (for daily direction that is more likely leakage than skill); non-finite losses; val loss and
  val AUROC disagreeing (one improving while the other worsens) on most epochs; one-class splits (an AUROC
  that is NaN);
- `by_budget`: the best trial per budget and style with its interval, and which budgets' best trials are
  distinguishable (paired block-bootstrap interval of the difference on their report-part predictions);
- `selection`: the best val AUROC against the selection null (the 95th percentile of the best of as many
  random scorers as there are completed trials, on the same val labels).

`--fail-on-findings` exits 1 when `suspicious` is non-empty.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules.errors import SWITCH, Parser, UserError, run_main

TOP_FRACTION = 0.1
MIN_TOP = 5
EDGE = 0.1  # the outer tenth of a range is its edge
EDGE_SHARE = 0.5  # flagged when at least this share (and 2) of the top trials sit at one edge
FEW_VALUES = 10  # an integer range with at most this many values: its edge is its end value
HIGH_MARGIN = 0.15
MISMATCH_SHARE = 0.5
MIN_STEPS = 3  # epochs - 1 needed before loss and AUROC can disagree "for most of training"
LARGE_GAP = 0.1  # train minus val AUROC the overfit section calls large
N_BOOT = 1000
LEVEL = 0.95
SECTIONS = ("states", "boundary_hits", "overfit_gap", "importances", "suspicious", "by_budget", "selection")
HISTORY = ("train/loss", "val/loss", "val/auroc")


@dataclass
class TrialData:
    """One trial with what its MLflow run holds (None when it has no run or the run is gone)."""

    trial: object  # optuna.trial.FrozenTrial
    run: object | None = None  # mlflow.entities.Run
    history: dict[str, list[float]] = field(default_factory=dict)  # per epoch, in step order

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def run_id(self) -> str | None:
        return self.trial.user_attrs.get("mlflow_run_id")

    def metric(self, key: str) -> float | None:
        if key in self.trial.user_attrs.get("evidence", {}):
            return float(self.trial.user_attrs["evidence"][key])
        if self.run is not None and key in self.run.data.metrics:
            return float(self.run.data.metrics[key])
        return None


# -- reading the study ------------------------------------------------------------------------------------

def load_study(name: str, storage: str | None):
    """The study, or a `UserError` naming the studies the storage holds."""
    import optuna

    from hpo.settings import DEFAULT_STORAGE
    from hpo.storage import open_storage

    url = storage or DEFAULT_STORAGE
    if "://" not in url and not Path(url).is_file():
        raise UserError(f"no study storage at {url}: pass the study's --storage (default ./{DEFAULT_STORAGE})")
    store, shown = open_storage(url)
    names = sorted(s.study_name for s in store.get_all_studies())
    if name not in names:
        known = f"studies there: {', '.join(names)}" if names else "it holds no study"
        raise UserError(f"no study {name!r} in {shown}; {known}")
    return optuna.load_study(study_name=name, storage=store), shown


def collect(study) -> tuple[list[TrialData], str | None]:
    """Every trial with its MLflow run and per-epoch curves; the study's parent run id (None: none)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from hpo.parent import PARENT_ATTR

    client = MlflowClient()
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id is not None:
        try:
            client.get_run(parent_id)
        except MlflowException:
            parent_id = None  # the run was deleted, or lives in another tracking store
    out = []
    for trial in study.get_trials(deepcopy=False):
        data = TrialData(trial)
        run_id = data.run_id
        if run_id:
            try:
                data.run = client.get_run(run_id)
            except MlflowException:
                data.run = None
        if data.run is not None:
            for key in HISTORY:
                history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
                data.history[key] = [float(m.value) for m in history]
        out.append(data)
    return out, parent_id


def _predictions(run_id: str | None) -> pd.DataFrame | None:
    """The report part of a trial's `predictions/val.parquet` (date index: label, probability), or None."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.read_parquet(MlflowClient().download_artifacts(run_id, "predictions/val.parquet", tmp))
    except (MlflowException, OSError):
        return None
    frame = frame[frame["part"] == "report"] if "part" in frame else frame
    return frame.set_index(pd.DatetimeIndex(frame["date"]))[["label", "probability"]]


def _horizon(data: TrialData) -> int:
    if data.run is not None and "data.horizon" in data.run.data.params:
        return int(data.run.data.params["data.horizon"])
    return 1


# -- the sections --------------------------------------------------------------------------------------------

def states(trials: list[TrialData]) -> dict:
    from hpo.recovery import FAILED_REASON

    counts = Counter(d.trial.state.name for d in trials)
    failures = []
    for d in trials:
        if d.trial.state.name != "FAIL":
            continue
        reason = d.trial.user_attrs.get("error") or d.trial.user_attrs.get(FAILED_REASON) or "no reason recorded"
        failures.append({"trial": d.number, "run_id": d.run_id, "reason": reason})
    reasons = Counter(f["reason"].splitlines()[0][:200] for f in failures)
    return {"total": len(trials), "counts": dict(sorted(counts.items())), "failures": failures,
            "reasons": dict(reasons.most_common())}


def _counted(trials: list[TrialData]) -> list[TrialData]:
    from hpo.parent import counted

    keep = {t.number for t in counted([d.trial for d in trials])}
    return [d for d in trials if d.number in keep and d.trial.value is not None and math.isfinite(d.trial.value)]


def _top(pool: list[TrialData]) -> list[TrialData]:
    """The top decile by val AUROC (at least MIN_TOP, at most all), best first."""
    k = min(len(pool), max(math.ceil(TOP_FRACTION * len(pool)), MIN_TOP))
    return sorted(pool, key=lambda d: (-d.trial.value, d.number))[:k]


def _searched(d: TrialData) -> bool:
    attrs = d.trial.user_attrs
    return not attrs.get("forced") and "transferred" not in attrs


def _order(choices) -> list | None:
    """Categorical choices in their natural order (numbers, or budgets like 750k), or None when unordered."""
    from models.budgets import parse_budget

    if len(choices) < 3:
        return None  # with two choices every value is at an edge
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices):
        return sorted(choices)
    try:
        return sorted(choices, key=lambda c: parse_budget(str(c)))
    except UserError:
        return None


def edge_of(distribution, value) -> str | None:
    """'low' or 'high' when `value` sits at that edge of the distribution's range, else None."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        order = _order(distribution.choices)
        if order is None:
            return None
        return "low" if value == order[0] else "high" if value == order[-1] else None
    low, high = distribution.low, distribution.high
    if high <= low:
        return None
    if isinstance(distribution, IntDistribution) and (high - low) // distribution.step + 1 <= FEW_VALUES:
        return "low" if value == low else "high" if value == high else None
    if distribution.log:
        position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    else:
        position = (value - low) / (high - low)
    return "low" if position <= EDGE else "high" if position >= 1 - EDGE else None


def _range(distribution) -> object:
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return list(_order(distribution.choices) or distribution.choices)
    return [distribution.low, distribution.high] + (["log"] if distribution.log else [])


def boundary_hits(trials: list[TrialData]) -> list[dict]:
    pool = [d for d in _counted(trials) if _searched(d)]
    top = _top(pool)
    hits = []
    for name in sorted({p for d in top for p in d.trial.params}):
        holders = [d for d in top if name in d.trial.params]
        if not holders:
            continue
        distribution = holders[0].trial.distributions[name]
        need = max(2, math.ceil(EDGE_SHARE * len(holders)))
        for side in ("low", "high"):
            at = [d for d in holders if edge_of(distribution, d.trial.params[name]) == side]
            if len(at) < need:
                continue
            everyone = [d for d in pool if name in d.trial.params]
            share_all = sum(edge_of(distribution, d.trial.params[name]) == side for d in everyone) / len(everyone)
            hits.append({
                "param": name, "edge": side, "range": _range(distribution), "top_at_edge": len(at),
                "top": len(holders), "share_of_all_at_edge": round(share_all, 3),
                "trials": [d.number for d in at], "values": [d.trial.params[name] for d in at],
            })
    return hits


def overfit_gap(trials: list[TrialData]) -> dict:
    rows = []
    for d in _top(_counted(trials)):
        train = d.metric("best/train/auroc")
        val = d.trial.value
        gap = None if train is None or not math.isfinite(train) else train - val
        rows.append({"trial": d.number, "run_id": d.run_id, "train_auroc": train, "val_auroc": val, "gap": gap,
                     "best_epoch": d.metric("best/epoch")})
    gaps = [r["gap"] for r in rows if r["gap"] is not None]
    return {"trials": rows, "median_gap": statistics.median(gaps) if gaps else None,
            "max_gap": max(gaps) if gaps else None,
            "large": [r["trial"] for r in rows if r["gap"] is not None and r["gap"] > LARGE_GAP],
            "large_threshold": LARGE_GAP,
            "missing": [r["trial"] for r in rows if r["gap"] is None]}


def importances(study, trials: list[TrialData]) -> dict:
    """fANOVA (seeded) over the params every counted searched trial has, and the optimisation history."""
    import optuna

    counted = _counted(trials)
    history, best = [], -math.inf
    for d in sorted(counted, key=lambda d: d.number):
        best = max(best, d.trial.value)
        history.append({"trial": d.number, "value": d.trial.value, "best_so_far": best})
    out: dict = {"method": "fanova", "values": {}, "history": history}
    searched = [d for d in counted if _searched(d)] or counted
    params = sorted(set.intersection(*(set(d.trial.params) for d in searched))) if searched else []
    params = [p for p in params if len({repr(d.trial.params[p]) for d in searched}) > 1]
    if len(searched) < 2 or not params:
        out["note"] = "too few completed trials, or no parameter that varies"
        return out
    try:
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=params)
    except (ValueError, RuntimeError) as err:
        out["note"] = f"not computable: {err}"
        return out
    out["values"] = {k: float(v) for k, v in values.items()}
    return out


def _finding(check: str, d: TrialData, detail: str) -> dict:
    return {"check": check, "trial": d.number, "run_id": d.run_id, "detail": detail}


def suspicious(trials: list[TrialData], high_margin: float = HIGH_MARGIN) -> list[dict]:
    found = []
    for d in trials:
        state = d.trial.state.name
        error = d.trial.user_attrs.get("error", "")
        val, high = d.metric("best/val/auroc"), d.metric("best/val/auroc_ci_high")
        if state == "COMPLETE" and high is not None and high < 0.5:
            found.append(_finding("below_chance", d, f"val AUROC {val:.4f}, 95% CI ends at {high:.4f} < 0.5: the "
                                                     "scores are inverted or the labels misaligned"))
        baseline = d.metric("baseline/best/val/auroc")
        if state == "COMPLETE" and val is not None and baseline is not None and val - baseline > high_margin:
            found.append(_finding("implausibly_high", d, f"val AUROC {val:.4f} is {val - baseline:+.4f} above the "
                                                         f"best baseline's {baseline:.4f} (margin {high_margin}): "
                                                         "look for leakage"))
        bad = [k for k in ("train/loss", "val/loss") if any(not math.isfinite(v) for v in d.history.get(k, []))]
        if bad or "non-finite" in error.lower():
            what = ", ".join(bad) if bad else "the training loss"
            found.append(_finding("non_finite_loss", d, f"{what} non-finite" + (f" ({error[:200]})" if error else "")))
        mismatch = _disagreement(d.history.get("val/loss", []), d.history.get("val/auroc", []))
        if mismatch is not None and mismatch[0] > MISMATCH_SHARE * mismatch[1]:
            found.append(_finding("loss_metric_mismatch", d, f"val loss and val AUROC disagree on {mismatch[0]} of "
                                                             f"{mismatch[1]} epochs (one improves, the other worsens)"))
        nan = [k for k in ("best/val/auroc", "best/train/auroc")
               if d.run is not None and k in d.run.data.metrics and math.isnan(d.run.data.metrics[k])]
        if nan or "one class" in error:
            found.append(_finding("one_class", d, (f"{', '.join(nan)} NaN: " if nan else "") + "a split with one "
                                                 "class" + (f" ({error[:200]})" if error else "")))
    return found


def _disagreement(loss: list[float], auroc: list[float]) -> tuple[int, int] | None:
    """(epochs where loss and AUROC move the same way, i.e. one improves while the other worsens, epochs
    compared); None with fewer than MIN_STEPS steps."""
    n = min(len(loss), len(auroc))
    if n - 1 < MIN_STEPS:
        return None
    loss, auroc = np.asarray(loss[:n]), np.asarray(auroc[:n])
    if not (np.isfinite(loss).all() and np.isfinite(auroc).all()):
        return None
    dl, da = np.diff(loss), np.diff(auroc)
    moved = (dl != 0) & (da != 0)
    if moved.sum() < MIN_STEPS:
        return None
    return int((np.sign(dl[moved]) == np.sign(da[moved])).sum()), int(moved.sum())


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    if np.isnan(values).all():
        return None, None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def by_budget(trials: list[TrialData]) -> dict:
    from hpo.parent import budget_of
    from models.budgets import parse_budget
    from models.intervals import block_bootstrap_indices, block_length, rank_auroc, resampled_auroc

    counted = _counted(trials)
    groups: dict[tuple[str, str], list[TrialData]] = {}
    for d in counted:
        budget = budget_of(d.trial)
        if budget is not None:
            groups.setdefault((budget, d.trial.user_attrs.get("style", "searched")), []).append(d)

    def size(budget: str) -> int:
        try:
            return parse_budget(budget)
        except UserError:
            return 0

    rows = []
    for (budget, style), members in sorted(groups.items(), key=lambda kv: (size(kv[0][0]), kv[0][1])):
        best = max(members, key=lambda d: (d.trial.value, -d.number))
        rows.append({"budget": budget, "style": style, "trials": len(members), "best_trial": best.number,
                     "val_auroc": best.trial.value, "ci_low": best.metric("best/val/auroc_ci_low"),
                     "ci_high": best.metric("best/val/auroc_ci_high"), "run_id": best.run_id})
    per_budget: dict[str, TrialData] = {}
    for d in counted:
        budget = budget_of(d.trial)
        if budget is not None and (budget not in per_budget or (d.trial.value, -d.number) >
                                   (per_budget[budget].trial.value, -per_budget[budget].number)):
            per_budget[budget] = d
    budgets = sorted(per_budget, key=size)
    frames = {b: _predictions(per_budget[b].run_id) for b in budgets}
    pairs = []
    usable = [b for b in budgets if frames[b] is not None]
    if len(usable) >= 2:
        dates = pd.DatetimeIndex(sorted(set.intersection(*(set(frames[b].index) for b in usable))))
        labels = frames[usable[0]]["label"].reindex(dates).to_numpy(dtype=float)
        block = block_length(labels, _horizon(per_budget[usable[0]]))
        idx = block_bootstrap_indices(len(dates), block, N_BOOT, np.random.default_rng(0))
        scores = {b: frames[b]["probability"].reindex(dates).to_numpy(dtype=float) for b in usable}
        samples = {b: resampled_auroc(labels, scores[b], idx) for b in usable}
        points = {b: float(rank_auroc(labels, scores[b])) for b in usable}
    for a, b in itertools.combinations(budgets, 2):
        pair = {"a": a, "b": b, "trial_a": per_budget[a].number, "trial_b": per_budget[b].number,
                "diff": per_budget[a].trial.value - per_budget[b].trial.value}
        if a in usable and b in usable:  # the difference on the predictions the interval resamples
            low, high = _interval(samples[a] - samples[b])
            pair |= {"diff": points[a] - points[b], "ci_low": low, "ci_high": high,
                     "distinguishable": low is not None and (low > 0 or high < 0)}
        else:
            pair |= {"ci_low": None, "ci_high": None, "distinguishable": None,
                     "note": "no predictions/val.parquet for one of them"}
        pairs.append(pair)
    return {"best": rows, "pairs": pairs,
            "distinguishable": [[p["a"], p["b"]] for p in pairs if p["distinguishable"]]}


def selection(trials: list[TrialData], parent_metrics: dict[str, float]) -> dict:
    from hpo.parent import best_trial
    from models.intervals import selection_null

    counted = _counted(trials)
    best = best_trial([d.trial for d in trials])
    if best is None:
        return {"note": "no completed trial"}
    data = next(d for d in trials if d.number == best.number)
    out = {"best_trial": best.number, "best_val_auroc": best.value, "k": len(counted)}
    frame = _predictions(data.run_id)
    if frame is not None and frame["label"].nunique() == 2:
        null = selection_null(frame["label"].to_numpy(dtype=float), len(counted), horizon=_horizon(data),
                              seed=len(counted))
        out |= {"null_p95": null, "source": "the best trial's val labels"}
    elif "selection/null_auroc_p95" in parent_metrics:
        out |= {"null_p95": parent_metrics["selection/null_auroc_p95"], "source": "the study's parent run"}
    else:
        out |= {"null_p95": None, "note": "no val labels to simulate on (no predictions/val.parquet)"}
    if out.get("null_p95") is not None:
        out["exceeds"] = bool(best.value > out["null_p95"])
    return out


def audit(study, trials: list[TrialData], parent_metrics: dict[str, float] | None = None,
          high_margin: float = HIGH_MARGIN) -> dict:
    """The report as a dict of the SECTIONS (every key present, also for a study without a finished trial)."""
    return {
        "states": states(trials),
        "boundary_hits": boundary_hits(trials),
        "overfit_gap": overfit_gap(trials),
        "importances": importances(study, trials),
        "suspicious": suspicious(trials, high_margin),
        "by_budget": by_budget(trials),
        "selection": selection(trials, parent_metrics or {}),
    }


# -- output ----------------------------------------------------------------------------------------------------

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


def report_lines(name: str, report: dict) -> list[str]:
    """The short report (printed; the head of report.md)."""
    s = report["states"]
    lines = [f"study {name!r}: {s['total']} trials, " + ", ".join(f"{n} {k}" for k, n in s["counts"].items())]
    for reason, n in s["reasons"].items():
        lines.append(f"  failed x{n}: {reason}")
    hits = report["boundary_hits"]
    lines.append(f"boundary hits: {len(hits) or 'none'}")
    for h in hits:
        lines.append(f"  {h['param']}: {h['top_at_edge']} of the top {h['top']} trials at the {h['edge']} edge of "
                     f"{h['range']} ({h['share_of_all_at_edge']:.0%} of all searched trials): widen the range there")
    o = report["overfit_gap"]
    if o["trials"]:
        lines.append(f"overfit gap (train - val AUROC at the best epoch, top {len(o['trials'])} trials): median "
                     f"{_f(o['median_gap'], '+.3f')}, max {_f(o['max_gap'], '+.3f')}"
                     + (f"; above {LARGE_GAP}: trials {', '.join(map(str, o['large']))}" if o["large"] else "")
                     + (f"; no best/train/auroc for trials {', '.join(map(str, o['missing']))}" if o["missing"] else ""))
    imp = report["importances"]
    if imp["values"]:
        top = list(imp["values"].items())[:4]
        lines.append("importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    elif imp.get("note"):
        lines.append(f"importances: {imp['note']}")
    sus = report["suspicious"]
    lines.append(f"suspicious: {len(sus) or 'none'}")
    for f in sus:
        lines.append(f"  trial {f['trial']} {f['check']}: {f['detail']}")
    b = report["by_budget"]
    for row in b["best"]:
        lines.append(f"budget {row['budget']} {row['style']}: best trial {row['best_trial']} val AUROC "
                     f"{_f(row['val_auroc'])} [{_f(row['ci_low'])}, {_f(row['ci_high'])}] of {row['trials']} trials")
    for p in b["pairs"]:
        verdict = ("no predictions" if p["distinguishable"] is None else
                   "distinguishable" if p["distinguishable"] else "not distinguishable")
        lines.append(f"  best {p['a']} - best {p['b']}: {p['diff']:+.4f}, paired 95% CI "
                     f"[{_f(p['ci_low'], '+.4f')}, {_f(p['ci_high'], '+.4f')}]: {verdict}")
    sel = report["selection"]
    if sel.get("null_p95") is not None:
        lines.append(f"selection: the best val AUROC {sel['best_val_auroc']:.4f} (trial {sel['best_trial']}) "
                     f"{'exceeds' if sel['exceeds'] else 'does NOT exceed'} {sel['null_p95']:.4f}, what the best of "
                     f"{sel['k']} random scorers reaches on these labels (95th percentile)")
    else:
        lines.append(f"selection: {sel.get('note', 'not computable')}")
    return lines


def markdown(name: str, report: dict) -> str:
    out = [f"# Audit of study `{name}`", "", "```", *report_lines(name, report), "```", ""]
    s = report["states"]
    out += ["## states", "", "| state | trials |", "|---|---:|", *[f"| {k} | {n} |" for k, n in s["counts"].items()],
            ""]
    if s["failures"]:
        out += ["| failed trial | reason |", "|---:|---|",
                *[f"| {f['trial']} | {f['reason'].splitlines()[0][:300]} |" for f in s["failures"]], ""]
    out += ["## boundary_hits", "", "Searched parameters whose top trials (top decile of the completed searched "
            f"trials, at least {MIN_TOP}) sit at one edge of the range: the outer {EDGE:.0%} of a numeric range, "
            "the end value of a short integer range or an ordered choice.", ""]
    if report["boundary_hits"]:
        out += ["| param | edge | range | top at edge | share of all trials at edge | trials |", "|---|---|---|---|---|---|",
                *[f"| {h['param']} | {h['edge']} | {h['range']} | {h['top_at_edge']}/{h['top']} | "
                  f"{h['share_of_all_at_edge']:.0%} | {', '.join(map(str, h['trials']))} |"
                  for h in report["boundary_hits"]]]
    else:
        out.append("None.")
    o = report["overfit_gap"]
    out += ["", "## overfit_gap", "", "| trial | train AUROC | val AUROC | gap | best epoch |", "|---:|---:|---:|---:|---:|",
            *[f"| {r['trial']} | {_f(r['train_auroc'])} | {_f(r['val_auroc'])} | {_f(r['gap'], '+.4f')} | "
              f"{_f(r['best_epoch'], '.0f')} |" for r in o["trials"]]]
    imp = report["importances"]
    out += ["", "## importances", "", *(["| param | fANOVA importance |", "|---|---:|",
                                         *[f"| {k} | {v:.3f} |" for k, v in imp["values"].items()]]
                                        if imp["values"] else [imp.get("note", "")])]
    out += ["", "## suspicious", ""]
    out += (["| trial | check | detail |", "|---:|---|---|",
             *[f"| {f['trial']} | {f['check']} | {f['detail']} |" for f in report["suspicious"]]]
            if report["suspicious"] else ["None."])
    b = report["by_budget"]
    out += ["", "## by_budget", "", "| budget | style | trials | best trial | val AUROC | 95% CI |",
            "|---|---|---:|---:|---:|---|",
            *[f"| {r['budget']} | {r['style']} | {r['trials']} | {r['best_trial']} | {_f(r['val_auroc'])} | "
              f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}] |" for r in b["best"]], ""]
    if b["pairs"]:
        out += ["| best of | minus best of | difference | paired 95% CI | distinguishable |", "|---|---|---:|---|---|",
                *[f"| {p['a']} | {p['b']} | {p['diff']:+.4f} | [{_f(p['ci_low'], '+.4f')}, {_f(p['ci_high'], '+.4f')}] "
                  f"| {'-' if p['distinguishable'] is None else 'yes' if p['distinguishable'] else 'no'} |"
                  for p in b["pairs"]]]
    out += ["", "## selection", "", "```", json.dumps(clean(report["selection"]), indent=2), "```", ""]
    return "\n".join(out)


def figures(name: str, report: dict, trials: list[TrialData]) -> dict[str, object]:
    """audit/plots/*.png: optimisation history, importances, overfit gap, best per budget, boundary hits."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    out = {}
    history = report["importances"]["history"]
    if history:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.subplots()
        ax.scatter([h["trial"] for h in history], [h["value"] for h in history], s=14, label="completed")
        ax.step([h["trial"] for h in history], [h["best_so_far"] for h in history], where="post", color="C3",
                label="best so far")
        sel = report["selection"]
        if sel.get("null_p95") is not None:
            ax.axhline(sel["null_p95"], color="grey", linestyle="--", label="selection null (95th pct)")
        ax.set(xlabel="trial", ylabel="val AUROC", title=f"{name}: optimisation history")
        ax.legend(fontsize=8)
        out["optimization_history"] = fig
    values = report["importances"]["values"]
    if values:
        names = list(values)[::-1]
        fig = Figure(figsize=(7, 0.4 * len(names) + 1.2), layout="constrained")
        ax = fig.subplots()
        ax.barh(names, [values[n] for n in names])
        ax.set(xlabel="fANOVA importance", title=f"{name}: parameter importances")
        out["importances"] = fig
    rows = [r for r in report["overfit_gap"]["trials"] if r["gap"] is not None]
    if rows:
        fig = Figure(figsize=(5, 5), layout="constrained")
        ax = fig.subplots()
        ax.scatter([r["val_auroc"] for r in rows], [r["train_auroc"] for r in rows])
        for r in rows:
            ax.annotate(str(r["trial"]), (r["val_auroc"], r["train_auroc"]), fontsize=7)
        lo = min(min(r["val_auroc"], r["train_auroc"]) for r in rows) - 0.02
        hi = max(max(r["val_auroc"], r["train_auroc"]) for r in rows) + 0.02
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":")
        ax.set(xlabel="val AUROC", ylabel="train AUROC (best epoch)", title="top trials: train vs val")
        out["overfit_gap"] = fig
    best = report["by_budget"]["best"]
    if best:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.subplots()
        for k, r in enumerate(best):
            low = r["ci_low"] if r["ci_low"] is not None else r["val_auroc"]
            high = r["ci_high"] if r["ci_high"] is not None else r["val_auroc"]
            ax.errorbar([k], [r["val_auroc"]], yerr=[[r["val_auroc"] - low], [high - r["val_auroc"]]], marker="o",
                        capsize=3, color="C0")
        ax.set_xticks(range(len(best)), [f"{r['budget']}\n{r['style']}" for r in best], fontsize=7)
        ax.axhline(0.5, color="black", linewidth=0.6, linestyle=":")
        ax.set(ylabel="best val AUROC, 95% CI", title="best trial per budget and style")
        out["by_budget"] = fig
    hits = report["boundary_hits"]
    if hits:
        counted = _counted(trials)
        fig = Figure(figsize=(4 * len(hits), 3.5), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(hits)))
        for ax, h in zip(axes, hits, strict=True):
            points = [(d.trial.params[h["param"]], d.trial.value) for d in counted if h["param"] in d.trial.params]
            xs = [p[0] if isinstance(p[0], int | float) else str(p[0]) for p in points]
            ax.scatter(xs, [p[1] for p in points], s=12)
            if isinstance(h["range"], list) and len(h["range"]) >= 2 and "log" in h["range"]:
                ax.set_xscale("log")
            ax.set(xlabel=h["param"], ylabel="val AUROC", title=f"{h['param']}: {h['edge']} edge")
        out["boundary_hits"] = fig
    return out


def log_report(name: str, shown: str, report: dict, trials: list[TrialData], parent_id: str | None) -> str:
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
        counts = report["states"]["counts"]
        metrics = {f"audit/trials/{k.lower()}": v for k, v in counts.items()}
        metrics |= {"audit/suspicious": len(report["suspicious"]), "audit/boundary_hits": len(report["boundary_hits"])}
        if report["overfit_gap"]["median_gap"] is not None:
            metrics["audit/overfit_gap_median"] = report["overfit_gap"]["median_gap"]
        tracking.log_batch(run_id, metrics, tags=tags)
        client.log_text(run_id, markdown(name, report), "audit/report.md")
        client.log_text(run_id, json.dumps(clean(report), indent=2, sort_keys=False), "audit/report.json")
        for key, figure in figures(name, report, trials).items():
            client.log_figure(run_id, figure, f"audit/plots/{key}.png")
    return run_id


# -- main ---------------------------------------------------------------------------------------------------

def build_parser() -> Parser:
    parser = Parser(prog="python -m hpo.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", "--study-name", dest="study", required=True, help="the study to audit")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage: a journal file path (default ./optuna.journal) or an RDB URL")
    parser.add_argument("--fail-on-findings", **SWITCH,
                        help="exit 1 when the suspicious section is not empty")
    parser.add_argument("--high-margin", type=_margin, default=HIGH_MARGIN,
                        help="val AUROC this far above the best baseline's is flagged implausibly high")
    return parser


def _margin(text: str) -> float:
    """A number > 0; "" (MLproject's "not given") is the default."""
    if not text.strip():
        return HIGH_MARGIN
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    import optuna

    from training import tracking

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tracking.experiment_id()  # a tracking store that cannot be used fails before anything is read
    study, shown = load_study(args.study, args.storage)
    trials, parent_id = collect(study)
    parent_metrics = mlflow.get_run(parent_id).data.metrics if parent_id else {}
    report = audit(study, trials, parent_metrics, args.high_margin)
    run_id = log_report(args.study, shown, report, trials, parent_id)
    print("\n".join(report_lines(args.study, report)))
    where = f"nested under the study's parent run {parent_id}" if parent_id else "(the study has no parent run)"
    print(f"MLflow: audit run {run_id} (kind=audit) {where}: audit/report.md, audit/report.json, audit/plots/")
    if args.fail_on_findings and report["suspicious"]:
        print(f"{len(report['suspicious'])} suspicious findings (--fail-on-findings): exit 1", file=sys.stderr)
        return 1
    return 0


def _main(argv: list[str] | None = None) -> None:
    code = main(argv)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    run_main(_main)
