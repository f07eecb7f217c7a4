"""The audit's sections, each a function of the trials (`hpo.audit.trials.TrialData`) returning a typed
record; `audit` composes them into the `Report` (its fields are `SECTIONS`; `Report.to_json` is report.json):

- `states`: trials per state, and why each failed trial failed;
- `boundary_hits`: searched parameters whose top trials (the top decile of the completed, searched trials,
  at least 5) sit at one edge of their range: at least half of them in the outer tenth of the range (in
  its search scale; for an ordered choice of at least 3 values or an integer with at most 10, the end
  value itself), and more of them than chance would put there: under the null that a trial's value has
  nothing to do with the parameter (the values permuted over the trials) the top trials are a random draw
  of the trials, and their count at the edge is hypergeometric; each (parameter, edge) tried is one of a
  family, Holm-corrected (`models.intervals.holm`), flagged only at an adjusted p below 1 - LEVEL. The range
  is then probably too narrow on that side (or the edge is a hard limit: dropout 0); the forced grid and a
  transferred config sit at fixed values and are left out;
- `overfit_gap`: train against val_report AUROC of the top trials at their best epoch (`best/train/auroc`);
- `importances`: Optuna's fANOVA importances over the parameters every searched trial has (descriptive),
  and the optimisation history; a parameter is named as mattering (`beats_null`) only when a rank test of
  its association with the trials' values (Spearman for numbers, Kruskal-Wallis for choices: the same
  statistic's distribution over permuted trial values) gives a Holm-adjusted p below 1 - LEVEL;
- `suspicious`: an AUROC interval entirely below 0.5; a val AUROC more than `--high-margin` above the best
  baseline's (for daily direction that is more likely leakage than skill); non-finite losses; val loss and
  val AUROC disagreeing (one improving while the other worsens) on most epochs; one-class splits (an AUROC
  that is NaN);
- `by_budget`: the best trial per budget and style (by the objective) with its val_report AUROC and
  interval, and which budgets' best trials are distinguishable (the paired studentized block-bootstrap
  interval of the difference on their report-part predictions, `models.intervals.bootstrap_auroc`; the pairs
  are one family: a pair is distinguishable only when its Holm-adjusted p-value is below 1 - LEVEL);
- `selection`: the best trial's objective against the selection null (the 95th percentile of the best of as
  many random scorers as the counted trials had epoch evaluations, `hpo.parent.evaluations`: an upper bound
  that covers the epoch selection within each trial too) on the labels the objective is measured on.

Trials are ranked by their value, the study's objective (`hpo.study_record.StudyRecord.objective`:
`best/val_select/auroc`, or `best/val/auroc` for a study created before selection moved to val_select); the
numbers shown for the trials it ranks first are their val_report ones (`best/val/auroc`).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from conventions.errors import UserError
from hpo.audit.trials import TrialData, by_fold, scored

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
OMIT = {"omit": True}  # field metadata: left out of the JSON when None (the key is absent, not null)


def to_json(record) -> object:
    """A section (or a list of its rows) as report.json holds it: a dict per record, in field order, without
    the `OMIT` fields that are None."""
    if isinstance(record, list):
        return [to_json(r) for r in record]
    if hasattr(record, "to_json"):
        return record.to_json()
    return _fields(record) if hasattr(record, "__dataclass_fields__") else record


def _fields(record) -> dict:
    return {f.name: to_json(getattr(record, f.name)) for f in fields(record)
            if not (f.metadata.get("omit") and getattr(record, f.name) is None)}


@dataclass
class Failure:
    trial: int
    run_id: str | None
    reason: str


@dataclass
class States:
    total: int
    counts: dict[str, int]  # trials per state name
    failures: list[Failure]
    reasons: dict[str, int]  # failures per reason (its first line), most common first


@dataclass
class BoundaryHit:
    param: str
    edge: str  # "low" or "high"
    range: list  # the choices in order, or [low, high] (+ "log")
    top_at_edge: int
    top: int  # the top trials that have the parameter
    share_of_all_at_edge: float
    trials: list[int]
    values: list
    p: float
    p_adjusted: float  # Holm over `family` parameter edges
    family: int


@dataclass
class GapRow:
    trial: int
    run_id: str | None
    train_auroc: float | None
    val_auroc: float | None
    gap: float | None
    best_epoch: float | None


@dataclass
class OverfitGap:
    trials: list[GapRow]
    median_gap: float | None
    max_gap: float | None
    large: list[int]
    large_threshold: float
    missing: list[int]


@dataclass
class HistoryPoint:
    trial: int
    value: float
    best_so_far: float


@dataclass
class Importances:
    method: str
    values: dict[str, float]  # fANOVA, descriptive
    history: list[HistoryPoint]
    note: str | None = field(default=None, metadata=OMIT)  # why there are no values
    p_adjusted: dict[str, float] | None = field(default=None, metadata=OMIT)
    beats_null: list[str] | None = field(default=None, metadata=OMIT)


@dataclass
class Finding:
    check: str
    trial: int
    run_id: str | None
    detail: str


@dataclass
class BudgetBest:
    budget: str
    style: str
    trials: int
    best_trial: int
    objective: float
    val_auroc: float | None
    ci_low: float | None
    ci_high: float | None
    run_id: str | None


@dataclass
class BudgetPair:
    a: str
    b: str
    trial_a: int
    trial_b: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None = field(default=None, metadata=OMIT)
    p_adjusted: float | None = field(default=None, metadata=OMIT)
    family: int | None = field(default=None, metadata=OMIT)
    distinguishable: bool | None = None  # None: no predictions to compare them on
    note: str | None = field(default=None, metadata=OMIT)


@dataclass
class ByBudget:
    best: list[BudgetBest]
    pairs: list[BudgetPair]
    correction: str
    distinguishable: list[list[str]]


@dataclass
class Selection:
    """Without a completed trial, only `note`."""

    best_trial: int | None = None
    objective: str | None = None
    samples: str | None = None
    best_value: float | None = None
    trials: int | None = None
    k: int | None = None
    null_method: str | None = None
    null_p95: float | None = None
    folds: int = 1  # walk-forward folds the values are means over (the null is taken fold by fold)
    source: str | None = field(default=None, metadata=OMIT)
    note: str | None = field(default=None, metadata=OMIT)
    exceeds: bool | None = field(default=None, metadata=OMIT)

    def to_json(self) -> dict:
        return {"note": self.note} if self.best_trial is None else _fields(self)


@dataclass
class Report:
    states: States
    boundary_hits: list[BoundaryHit]
    overfit_gap: OverfitGap
    importances: Importances
    suspicious: list[Finding]
    by_budget: ByBudget
    selection: Selection

    def to_json(self) -> dict:
        return {name: to_json(getattr(self, name)) for name in SECTIONS}


SECTIONS = tuple(f.name for f in fields(Report))


def states(trials: list[TrialData]) -> States:
    counts = Counter(d.trial.state.name for d in trials)
    failures = [Failure(d.number, d.run_id, d.record.why_failed or "no reason recorded")
                for d in trials if d.trial.state.name == "FAIL"]
    reasons = Counter(f.reason.splitlines()[0][:200] for f in failures)
    return States(len(trials), dict(sorted(counts.items())), failures, dict(reasons.most_common()))


def _top(pool: list[TrialData]) -> list[TrialData]:
    """The top decile by objective (at least MIN_TOP, at most all), best first."""
    k = min(len(pool), max(math.ceil(TOP_FRACTION * len(pool)), MIN_TOP))
    return sorted(pool, key=lambda d: (-d.trial.value, d.number))[:k]


def _searched(d: TrialData) -> bool:
    record = d.record
    return not record.forced and record.transferred is None


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


def boundary_hits(trials: list[TrialData]) -> list[BoundaryHit]:
    from scipy.stats import hypergeom

    from models.intervals import holm

    pool = [d for d in scored(trials) if _searched(d)]
    top = _top(pool)
    candidates, p = [], {}
    for name in sorted({p for d in top for p in d.trial.params}):
        holders = [d for d in top if name in d.trial.params]
        distribution = holders[0].trial.distributions[name]
        need = max(2, math.ceil(EDGE_SHARE * len(holders)))
        everyone = [d for d in pool if name in d.trial.params]
        for side in ("low", "high"):
            at = [d for d in holders if edge_of(distribution, d.trial.params[name]) == side]
            at_all = sum(edge_of(distribution, d.trial.params[name]) == side for d in everyone)
            # P(at least this many of the top at the edge) when the top is a random draw of the trials
            p[name, side] = float(hypergeom.sf(len(at) - 1, len(everyone), at_all, len(holders)))
            if len(at) >= need:
                candidates.append((name, side, _range(distribution), len(at), len(holders),
                                   round(at_all / len(everyone), 3), [d.number for d in at],
                                   [d.trial.params[name] for d in at]))
    adjusted = holm(p)
    return [BoundaryHit(*c, p[c[:2]], adjusted[c[:2]], len(p)) for c in candidates if adjusted[c[:2]] < 1 - LEVEL]


def overfit_gap(trials: list[TrialData]) -> OverfitGap:
    rows = []
    for d in _top(scored(trials)):
        train, val = d.metric("best/train/auroc"), d.metric("best/val/auroc")
        gap = None if train is None or val is None or not math.isfinite(train) else train - val
        rows.append(GapRow(d.number, d.run_id, train, val, gap, d.metric("best/epoch")))
    gaps = [r.gap for r in rows if r.gap is not None]
    return OverfitGap(rows, statistics.median(gaps) if gaps else None, max(gaps) if gaps else None,
                      [r.trial for r in rows if r.gap is not None and r.gap > LARGE_GAP], LARGE_GAP,
                      [r.trial for r in rows if r.gap is None])


def importances(study, trials: list[TrialData]) -> Importances:
    """fANOVA (seeded) over the params every counted searched trial has, and the optimisation history; which
    params beat a null (`_association`, Holm over the params)."""
    import optuna

    from models.intervals import holm

    counted = scored(trials)
    history, best = [], -math.inf
    for d in sorted(counted, key=lambda d: d.number):
        best = max(best, d.trial.value)
        history.append(HistoryPoint(d.number, d.trial.value, best))
    out = Importances("fanova", {}, history)
    searched = [d for d in counted if _searched(d)] or counted
    params = sorted(set.intersection(*(set(d.trial.params) for d in searched))) if searched else []
    params = [p for p in params if len({repr(d.trial.params[p]) for d in searched}) > 1]
    if len(searched) < 2 or not params:
        out.note = "too few completed trials, or no parameter that varies"
        return out
    try:
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=params)
    except (ValueError, RuntimeError) as err:
        out.note = f"not computable: {err}"
        return out
    out.values = {k: float(v) for k, v in values.items()}
    out.p_adjusted = holm({name: _association(searched, name) for name in params})
    out.beats_null = [k for k in out.values if out.p_adjusted.get(k, math.nan) < 1 - LEVEL]
    return out


def _association(trials: list[TrialData], name: str) -> float:
    """p-value of "the trials' values do not depend on parameter `name`": Spearman's rank correlation for a
    number, Kruskal-Wallis across the choices otherwise (1.0 where the values or the parameter are constant)."""
    from scipy.stats import kruskal, spearmanr

    x, y = [d.trial.params[name] for d in trials], np.array([d.trial.value for d in trials], dtype=float)
    if len(set(map(repr, x))) < 2 or np.ptp(y) == 0:
        return 1.0
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in x):
        p = spearmanr(np.asarray(x, dtype=float), y).pvalue
    else:
        groups = [y[[repr(v) == key for v in x]] for key in sorted(set(map(repr, x)))]
        try:
            p = kruskal(*groups).pvalue
        except ValueError:  # every value identical
            return 1.0
    return 1.0 if math.isnan(p) else float(p)


def _finding(check: str, d: TrialData, detail: str) -> Finding:
    return Finding(check, d.number, d.run_id, detail)


def suspicious(trials: list[TrialData], high_margin: float = HIGH_MARGIN) -> list[Finding]:
    found = []
    for d in trials:
        state = d.trial.state.name
        error = d.record.error or ""
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


def by_budget(trials: list[TrialData]) -> ByBudget:
    from hpo.parent import best_by_budget, best_trial, budget_of
    from models.budgets import parse_budget
    from models.intervals import CORRECTION, TIED, FoldBootstrap, corrected_verdict, holm
    from training.train import REPORT

    counted = scored(trials)
    groups: dict[tuple[str, str], list[TrialData]] = {}
    for d in counted:
        budget = budget_of(d.trial)
        if budget is not None:
            groups.setdefault((budget, d.record.searched_style), []).append(d)

    def size(budget: str) -> int:
        try:
            return parse_budget(budget)
        except UserError:
            return 0

    by_number = {d.number: d for d in counted}
    rows = []
    for (budget, style), members in sorted(groups.items(), key=lambda kv: (size(kv[0][0]), kv[0][1])):
        best = by_number[best_trial([d.trial for d in members]).number]
        rows.append(BudgetBest(budget, style, len(members), best.number, best.trial.value,
                               best.metric("best/val/auroc"), best.metric("best/val/auroc_ci_low"),
                               best.metric("best/val/auroc_ci_high"), best.run_id))
    per_budget = {b: by_number[t.number] for b, t in best_by_budget([d.trial for d in counted]).items()}
    budgets = sorted(per_budget, key=size)
    frames = {b: per_budget[b].predictions(REPORT) for b in budgets}
    pairs = []
    usable = [b for b in budgets if frames[b] is not None]
    if len(usable) >= 2:  # on the report samples every one of them has, fold by fold (dates never repeat)
        dates = pd.DatetimeIndex(sorted(set.intersection(*(set(frames[b].index) for b in usable))))
        shared = {b: frames[b].reindex(dates) for b in usable}
        first = per_budget[usable[0]]
        boot = FoldBootstrap(by_fold(shared[usable[0]], "label"), horizon=first.horizon,
                             histories=first.train_labels(), n_boot=N_BOOT, seed=0, level=LEVEL)
        intervals = boot.intervals({b: by_fold(shared[b], "probability") for b in usable})
        adjusted = holm({(a, b): intervals.p[a, b] for a, b in itertools.combinations(usable, 2)})
    for a, b in itertools.combinations(budgets, 2):
        trial_a, trial_b = per_budget[a].number, per_budget[b].number
        if a in usable and b in usable:  # the difference on the report-part predictions the interval resamples
            low, high = intervals.diff[a, b]
            pair = BudgetPair(a, b, trial_a, trial_b, intervals.point[a] - intervals.point[b], low, high,
                              p=intervals.p[a, b], p_adjusted=adjusted[a, b], family=len(adjusted),
                              distinguishable=corrected_verdict(low, high, adjusted[a, b], LEVEL) != TIED)
        else:
            va, vb = per_budget[a].metric("best/val/auroc"), per_budget[b].metric("best/val/auroc")
            pair = BudgetPair(a, b, trial_a, trial_b, None if va is None or vb is None else va - vb, None, None,
                              note="no predictions/val.parquet for one of them")
        pairs.append(pair)
    return ByBudget(rows, pairs, CORRECTION, [[p.a, p.b] for p in pairs if p.distinguishable])


def selection(trials: list[TrialData], parent_metrics: dict[str, float], objective: str) -> Selection:
    """`objective`: the metric the trials' values are (`hpo.study_record.StudyRecord.objective`); the null is
    simulated on the part of val it is measured on."""
    from hpo.parent import NULL_METHOD, best_trial, evaluations, null_of
    from training.train import OBJECTIVE, REPORT, SELECT

    counted = scored(trials)
    best = best_trial([d.trial for d in trials])
    if best is None:
        return Selection(note="no completed trial")
    data = next(d for d in trials if d.number == best.number)
    samples = SELECT if objective == OBJECTIVE else REPORT
    k = evaluations([d.trial for d in trials])
    out = Selection(best.number, objective, samples, best.value, len(counted), k, NULL_METHOD)
    frame = data.predictions(samples)
    if frame is not None and all(g["label"].nunique() == 2 for _, g in frame.groupby("fold")):
        labels = by_fold(frame, "label")
        out.null_p95 = null_of([d.trial for d in trials], labels, data.horizon, data.train_labels())
        out.folds = len(labels)
        out.source = f"the best trial's {samples} labels"
    elif "selection/null_auroc_p95" in parent_metrics:
        out.null_p95, out.source = parent_metrics["selection/null_auroc_p95"], "the study's parent run"
    else:
        out.note = "no val labels to simulate on (no predictions/val.parquet)"
    if out.null_p95 is not None:
        out.exceeds = bool(best.value > out.null_p95)
    return out


def audit(study, trials: list[TrialData], parent_metrics: dict[str, float] | None = None,
          high_margin: float = HIGH_MARGIN) -> Report:
    """The report: every section, also for a study without a finished trial."""
    from hpo.study_record import StudyRecord

    return Report(states(trials), boundary_hits(trials), overfit_gap(trials), importances(study, trials),
                  suspicious(trials, high_margin), by_budget(trials),
                  selection(trials, parent_metrics or {}, StudyRecord.of(study).objective))

