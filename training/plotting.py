"""The one plotting style of the project, and every figure it logs, drawn from small typed inputs.

Callers (`training.evaluate`, `hpo.parent`, `hpo.audit.report`, `hpo.ablation.summary`) turn their data into
the records below; this module owns how they look: figure sizes, resolution, fonts, colours, markers, and
what each AUROC picture carries:

- every plotted AUROC with its interval (a vertical or horizontal segment between the interval's bounds,
  then the point: a bootstrap interval need not contain its point estimate), never a bar from a floor;
- the best baseline as a line (a band where its interval is known) with its name in the legend;
- chance (AUROC 0.5) as a line, and the selection null where the picture shows a selection;
- y-limits that hold every interval and reference line; whole-number trial axes; complete, pruned and
  failed trials with their own markers; titles wrapped to the figure's width.

Figures are `matplotlib.figure.Figure` objects (no pyplot: no GUI backend, no global figure state), which
`mlflow.log_figure` saves at the figure's resolution.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

DPI = 120
WIDE = (7.0, 4.2)
SQUARE = (5.4, 6.6)
TITLE_SIZE, LABEL_SIZE, TICK_SIZE, LEGEND_SIZE, NOTE_SIZE = 10, 9, 8, 7.5, 6.5
MODEL_COLOUR = "tab:blue"
BASELINE_COLOUR = "dimgrey"
NULL_COLOUR = "tab:red"
BEST_COLOUR = "tab:orange"
CHANCE_COLOUR = "black"
SERIES_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
# a trial's state -> (marker, colour, legend label)
TRIAL_MARKERS = {"COMPLETE": ("o", MODEL_COLOUR, "complete"),
                 "PRUNED": ("x", "grey", "pruned (last reported value)"),
                 "FAIL": ("v", NULL_COLOUR, "failed (no value)")}
CHANCE = 0.5


@dataclass(frozen=True)
class Estimate:
    """An AUROC and its interval (None where there is none)."""

    value: float
    low: float | None = None
    high: float | None = None

    def text(self) -> str:
        shown = f"{self.value:.3f}"
        return shown if self.low is None or self.high is None else f"{shown} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Baseline:
    """The best baseline on the plotted samples: its name and AUROC (with its interval where known)."""

    name: str
    auroc: Estimate


@dataclass(frozen=True)
class TrialPoint:
    """One finished trial of a study: `state` COMPLETE, PRUNED or FAIL; `value` its objective (a pruned
    trial's last report), None where it has none; `counts`: whether it can be the best (running best)."""

    number: int
    state: str
    value: float | None
    counts: bool = True


@dataclass(frozen=True)
class Null:
    """The selection null: the 95th percentile of the best AUROC `k` random scorers reach (over `folds`
    walk-forward folds: the mean over folds of each fold's best, the scorers spread over them)."""

    value: float
    k: int
    folds: int = 1

    def label(self) -> str:
        where = "" if self.folds == 1 else f" over {self.folds} folds, mean of each fold's best"
        return f"selection null {self.value:.3f} (best of {self.k} random scorers{where}, 95th pct)"


@dataclass(frozen=True)
class RocCurve:
    """One scorer's ROC curve; `role`: `model`, `best baseline` or `baseline`."""

    name: str
    fpr: Sequence[float]
    tpr: Sequence[float]
    auroc: Estimate
    role: str


@dataclass(frozen=True)
class CalibrationBin:
    mean_probability: float
    frequency: float
    count: int


@dataclass(frozen=True)
class GapPoint:
    """A trial's AUROC on val (with its interval) against the same checkpoint's AUROC on train."""

    trial: int
    val: Estimate
    train: float


@dataclass(frozen=True)
class ParamPanel:
    """The objective of each trial against one searched parameter that hits an edge of its range."""

    param: str
    edge: str
    values: Sequence[object]
    objectives: Sequence[float]
    log: bool = False
    choices: Sequence[object] | None = None  # a categorical parameter's choices, in their order
    bounds: tuple[float, float] | None = None  # a numeric parameter's searched range


def wrap(text: str, width_in: float, size: float = TITLE_SIZE) -> str:
    """`text` wrapped to lines that fit `width_in` inches at font `size` (each line kept as given)."""
    chars = max(20, int(width_in * 72 / (size * 0.6)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def canvas(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = WIDE, ncols: int = 1):
    """A figure in the house style and its axes (one, or a list of `ncols`), the title wrapped to fit."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = [fig.add_subplot(1, ncols, k + 1) for k in range(ncols)]
    for ax in axes:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
        ax.grid(True, color="0.92", linewidth=0.6)
        ax.set_axisbelow(True)
    fig.suptitle(wrap(title, size[0]), fontsize=TITLE_SIZE)
    return fig, (axes[0] if ncols == 1 else axes)


def legend(ax, ncol: int = 2) -> None:
    """The axes' legend below them, outside the data (`fig.legends[0]`)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.figure.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=LEGEND_SIZE, frameon=False)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def fit_limits(ax, values, axis: str = "y", pad: float = 0.08, min_span: float = 0.02) -> None:
    """Axis limits that hold every finite value in `values` (points, interval bounds, reference lines)."""
    values = _finite(values)
    if not values:
        return
    low, high = min(values), max(values)
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    span = high - low
    (ax.set_ylim if axis == "y" else ax.set_xlim)(low - pad * span, high + pad * span)


def chance_line(ax, axis: str = "y") -> None:
    kwargs = dict(color=CHANCE_COLOUR, linewidth=0.8, linestyle=":", label=f"chance (AUROC {CHANCE})")
    (ax.axhline if axis == "y" else ax.axvline)(CHANCE, **kwargs)


def null_line(ax, null: Null) -> None:
    ax.axhline(null.value, color=NULL_COLOUR, linewidth=1, linestyle="--",
               label=null.label())


def baseline_line(ax, baseline: Baseline, axis: str = "y") -> list[float]:
    """The best baseline as a line (and band where its interval is known), named in the legend; returns the
    values the axis limits must hold."""
    b = baseline.auroc
    line, span = (ax.axhline, ax.axhspan) if axis == "y" else (ax.axvline, ax.axvspan)
    line(b.value, color=BASELINE_COLOUR, linewidth=1.2, linestyle="--",
         label=f"best baseline: {baseline.name} {b.text()}")
    if b.low is not None and b.high is not None:
        span(b.low, b.high, color=BASELINE_COLOUR, alpha=0.12, linewidth=0)
    return [b.value, b.low, b.high]


def intervals(ax, at, estimates: Sequence[Estimate], colour: str, label: str | None, axis: str = "y") -> list[float]:
    """Each estimate's interval as one segment between its bounds (vertical on the y axis, horizontal on the
    x axis), then its point; `at`: the other coordinate. Returns the values the limits must hold."""
    spans = [(c, e.low, e.high) for c, e in zip(at, estimates, strict=True) if e.low is not None and e.high is not None]
    if spans:
        c, low, high = zip(*spans, strict=True)
        (ax.vlines if axis == "y" else ax.hlines)(c, low, high, color=colour, linewidth=1.6)
    values = [e.value for e in estimates]
    xs, ys = (at, values) if axis == "y" else (values, at)
    ax.plot(xs, ys, linestyle="none", marker="o", color=colour, label=label, markersize=6)
    return [v for e in estimates for v in (e.value, e.low, e.high)]


def integer_axis(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def history_figure(title: str, trials: Sequence[TrialPoint], ylabel: str, null: Null | None) -> Figure:
    """The objective of each finished trial by trial number: a marker per state (failed trials, and trials
    without a value, along the bottom edge), the running best of the trials that count, the selection null
    and chance."""
    fig, ax = canvas(title, "trial", ylabel)
    limits = [CHANCE] + ([null.value] if null else [])
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for state, (marker, colour, label) in TRIAL_MARKERS.items():
        shown = [t for t in trials if t.state == state and t.value is not None and math.isfinite(t.value)]
        if shown:
            ax.plot([t.number for t in shown], [t.value for t in shown], linestyle="none", marker=marker,
                    color=colour, label=label, markersize=5 if marker != "x" else 6)
            limits += [t.value for t in shown]
        missing = [t.number for t in trials if t.state == state and (t.value is None or not math.isfinite(t.value))]
        if missing:  # along the bottom edge
            ax.plot(missing, [0.03] * len(missing), transform=bottom, linestyle="none", marker=marker, color=colour,
                    markersize=6, label=label if state == "FAIL" else f"{state.lower()} (no value)", clip_on=False)
    complete = sorted((t for t in trials if t.state == "COMPLETE" and t.counts and t.value is not None
                       and math.isfinite(t.value)), key=lambda t: t.number)
    if complete:
        best, running = [], -math.inf
        for t in complete:
            running = max(running, t.value)
            best.append(running)
        ax.step([t.number for t in complete], best, where="post", color=BEST_COLOUR, linewidth=1.4,
                label="best so far")
    if null is not None:
        null_line(ax, null)
    chance_line(ax)
    integer_axis(ax.xaxis)
    fit_limits(ax, limits)
    if trials:
        numbers = [t.number for t in trials]
        ax.set_xlim(min(numbers) - 0.6, max(numbers) + 0.6)
    legend(ax)
    return fig


def importances_figure(title: str, importances: dict[str, float], xlabel: str) -> Figure:
    names = list(importances)[::-1]
    fig, ax = canvas(title, xlabel, "", size=(WIDE[0], 0.32 * len(names) + 1.4))
    ax.barh(names, [importances[n] for n in names], color=MODEL_COLOUR)
    ax.set_xlim(0, max(1e-9, *importances.values()) * 1.08)
    return fig


def groups_figure(title: str, groups: Sequence[str], estimates: Sequence[Estimate],
                  baselines: Sequence[Baseline | None], xlabel: str, ylabel: str) -> Figure:
    """One AUROC with its interval per group (e.g. each budget's best trial), beside the best baseline of its
    samples (one line when every group has the same, else a segment per group, named), and chance."""
    fig, ax = canvas(title, xlabel, ylabel)
    xs = list(range(len(groups)))
    limits = intervals(ax, xs, estimates, MODEL_COLOUR, "AUROC, 95% CI") + [CHANCE]
    known = [b for b in baselines if b is not None]
    if known and len(set(known)) == 1:
        limits += baseline_line(ax, known[0])
    elif known:
        label = "best baseline of each group's samples"
        for x, b in zip(xs, baselines, strict=True):
            if b is None:
                continue
            ax.hlines(b.auroc.value, x - 0.3, x + 0.3, color=BASELINE_COLOUR, linestyle="--", linewidth=1.2,
                      label=label)
            label = None
            ax.annotate(b.name, (x + 0.3, b.auroc.value), textcoords="offset points", xytext=(2, 0), va="center",
                        fontsize=NOTE_SIZE, color=BASELINE_COLOUR)
            limits += [b.auroc.value, b.auroc.low, b.auroc.high]
    chance_line(ax)
    ax.set_xticks(xs, groups, fontsize=TICK_SIZE)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    fit_limits(ax, limits)
    legend(ax)
    return fig


def curves_figure(title: str, series: dict[str, dict[int, Estimate]], baselines: dict[int, Baseline],
                  xlabel: str, ylabel: str) -> Figure:
    """AUROC with its interval against a numeric x (e.g. input size) per series, side by side, beside the
    best baseline at each x as a band named in the legend (and at each x where the names differ), and chance."""
    fig, ax = canvas(title, xlabel, ylabel)
    xs = sorted({x for points in series.values() for x in points} | set(baselines))
    limits = [CHANCE]
    if baselines:
        at = sorted(baselines)
        bs = [baselines[x] for x in at]
        names = {b.name for b in bs}
        label = (f"best baseline: {bs[0].name}, 95% CI" if len(names) == 1
                 else "best baseline (named under each x), 95% CI")
        if all(b.auroc.low is not None and b.auroc.high is not None for b in bs):
            ax.fill_between(at, [b.auroc.low for b in bs], [b.auroc.high for b in bs], color=BASELINE_COLOUR,
                            alpha=0.15, linewidth=0)
        ax.plot(at, [b.auroc.value for b in bs], color=BASELINE_COLOUR, linestyle="--", linewidth=1.2, label=label)
        limits += [v for b in bs for v in (b.auroc.value, b.auroc.low, b.auroc.high)]
    span = (max(xs) - min(xs)) if len(xs) > 1 else 1
    for k, (name, points) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        at = sorted(points)
        shift = (k - (len(series) - 1) / 2) * span * 0.012  # side by side, not on top of each other
        shifted = [x + shift for x in at]
        ax.plot(shifted, [points[x].value for x in at], color=colour, linewidth=0.8, alpha=0.6)
        limits += intervals(ax, shifted, [points[x] for x in at], colour, name)
    chance_line(ax)
    named = len({b.name for b in baselines.values()}) > 1  # the baseline's name under each x
    ax.set_xticks(xs, [f"{x}\n{baselines[x].name}" if named and x in baselines else str(x) for x in xs])
    fit_limits(ax, limits)
    legend(ax)
    return fig


def roc_figure(title: str, curves: Sequence[RocCurve]) -> Figure:
    """ROC curves; the legend gives each AUROC with its interval and names the best baseline."""
    fig, ax = canvas(title, "false positive rate", "true positive rate", size=SQUARE)
    style = {"model": dict(color=MODEL_COLOUR, linewidth=1.8, zorder=3),
             "best baseline": dict(color=BASELINE_COLOUR, linewidth=1.5, linestyle="--", zorder=2),
             "baseline": dict(linewidth=0.8, alpha=0.55, zorder=1)}
    order = {"model": 0, "best baseline": 1, "baseline": 2}
    for c in sorted(curves, key=lambda c: order[c.role]):  # stable: the model, the best baseline, the rest
        prefix = {"model": "", "best baseline": "best baseline: ", "baseline": ""}[c.role]
        ax.plot(c.fpr, c.tpr, label=f"{prefix}{c.name} AUROC {c.auroc.text()}", **style[c.role])
    ax.plot([0, 1], [0, 1], color=CHANCE_COLOUR, linestyle=":", linewidth=0.8, label=f"chance (AUROC {CHANCE})",
            zorder=4)
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
    legend(ax, ncol=1)
    return fig


def calibration_figure(title: str, series: dict[str, Sequence[CalibrationBin]], base_rate: float) -> Figure:
    """Reliability diagram: each bin's mean predicted probability against its observed frequency, the
    marker's area in proportion to the bin's samples; the counts in the legend (bins of one size) or beside
    each point (bins of different sizes)."""
    fig, ax = canvas(title, "mean predicted probability", "observed frequency", size=SQUARE)
    most = max((b.count for bins in series.values() for b in bins), default=1)
    top = base_rate
    for k, (name, bins) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        xs, ys, counts = [b.mean_probability for b in bins], [b.frequency for b in bins], [b.count for b in bins]
        low, high = min(counts), max(counts)
        even = high <= max(low + 1, 1.1 * low)
        size = (f"{low}" if low == high else f"{low}-{high}") + " samples each" if even else "samples beside each"
        ax.plot(xs, ys, color=colour, linewidth=1, label=f"{name}: {len(bins)} bins, {size}")
        ax.scatter(xs, ys, s=[12 + 100 * c / most for c in counts], color=colour, alpha=0.7, edgecolors="none")
        if not even:
            for b in bins:
                ax.annotate(str(b.count), (b.mean_probability, b.frequency), textcoords="offset points",
                            xytext=(5, -3 - 7 * k), fontsize=NOTE_SIZE, color=colour)
        top = max(top, *xs, *ys)
    top = min(1.0, top * 1.08 + 0.02)
    ax.plot([0, top], [0, top], color=CHANCE_COLOUR, linestyle=":", linewidth=0.8, label="perfect calibration")
    ax.axhline(base_rate, color=BEST_COLOUR, linestyle="--", linewidth=1, label=f"base rate {base_rate:.3f}")
    ax.set(xlim=(0, top), ylim=(0, top))
    ax.text(0.99, 0.01, "marker area: samples in the bin", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=NOTE_SIZE, color="grey")
    legend(ax, ncol=1)
    return fig


def gap_figure(title: str, points: Sequence[GapPoint], baseline: Baseline | None, xlabel: str, ylabel: str) -> Figure:
    """Train against val AUROC of the same checkpoint, the val interval as a horizontal segment, the
    diagonal (no gap), chance and the best baseline on the val axis."""
    fig, ax = canvas(title, xlabel, ylabel, size=SQUARE)
    limits = intervals(ax, [p.train for p in points], [p.val for p in points], MODEL_COLOUR, "trial (val 95% CI)",
                       axis="x")
    for p in points:
        ax.annotate(str(p.trial), (p.val.value, p.train), textcoords="offset points", xytext=(3, 3), fontsize=NOTE_SIZE)
    limits += [p.train for p in points] + [CHANCE]
    if baseline is not None:
        limits += baseline_line(ax, baseline, axis="x")
    chance_line(ax, axis="x")
    fit_limits(ax, limits, "x")
    fit_limits(ax, limits, "y")
    lo, hi = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", linewidth=0.8, label="no gap (train = val)")
    ax.set(xlim=(lo, hi), ylim=(lo, hi))
    legend(ax, ncol=1)
    return fig


def params_figure(title: str, panels: Sequence[ParamPanel], ylabel: str) -> Figure:
    """One panel per parameter: the objective of each trial against the parameter's value, and chance."""
    fig, axes = canvas(title, "", ylabel, size=(max(WIDE[0], 3.6 * len(panels)), 3.8), ncols=len(panels))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, p in zip(axes, panels, strict=True):
        if p.choices is not None:  # every choice a tick, in its order
            position = {repr(c): k for k, c in enumerate(p.choices)}
            xs = [position[repr(v)] for v in p.values]
            ax.set_xticks(range(len(p.choices)), [str(c) for c in p.choices])
            ax.set_xlim(-0.5, len(p.choices) - 0.5)
        else:
            xs = list(p.values)
        ax.plot(xs, p.objectives, linestyle="none", marker="o", color=MODEL_COLOUR, markersize=4)
        if p.log:
            ax.set_xscale("log")
        if p.bounds is not None:  # the searched range, so a value at its edge shows as one
            low, high = p.bounds
            pad = (high / low) ** 0.03 if p.log else (high - low) * 0.03
            ax.set_xlim(low / pad, high * pad) if p.log else ax.set_xlim(low - pad, high + pad)
            for bound, label in zip(p.bounds, ("searched range", None), strict=True):
                ax.axvline(bound, color="grey", linewidth=0.8, linestyle="-.", label=label)
        chance_line(ax)
        fit_limits(ax, [*p.objectives, CHANCE])
        ax.set_xlabel(p.param, fontsize=LABEL_SIZE)
        ax.set_title(wrap(f"{p.param}: top trials at the {p.edge} edge", 3.6, LABEL_SIZE), fontsize=LABEL_SIZE)
    legend(axes[0])
    return fig
