"""Every figure the project logs, built from tiny inputs and read back through matplotlib's objects: the
intervals drawn and held by the axes, the best baseline named, chance, the selection null, whole trial
numbers, a marker per trial state, counts on calibration bins, titles inside the figure."""

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo import parent
from hpo.ablation.summary import COLUMNS, Summary
from hpo.ablation.table import plot
from hpo.audit import checks
from hpo.audit.report import figures as audit_figures
from hpo.audit.trials import TrialData
from hpo.trial_record import TrialRecord
from models.intervals import Setting
from training import plotting
from training.evaluate import evaluate, figures

SPACE = {"budget": CategoricalDistribution(("20k", "50k")), "lr": FloatDistribution(1e-4, 1e-2, log=True)}


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def level_lines(ax, value: float) -> list:
    """Horizontal lines across the axes at `value` (axhline)."""
    return [line for line in ax.get_lines() if len(line.get_ydata()) == 2
            and np.allclose(np.asarray(line.get_ydata(), dtype=float), value) and list(line.get_xdata()) == [0, 1]]


def holds(limits, values) -> bool:
    low, high = limits
    return all(low <= v <= high for v in values)


def rendered(fig) -> None:
    FigureCanvasAgg(fig).draw()


def title_fits(fig) -> bool:
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = fig._suptitle.get_window_extent(renderer)
    return box.x0 >= 0 and box.x1 <= fig.bbox.x1


def study_trials() -> list[optuna.trial.FrozenTrial]:
    """Five trials: three complete (two budgets), one pruned with its last report, one failed."""
    study = optuna.create_study(direction="maximize")
    spec = [(TrialState.COMPLETE, 0.56, "20k"), (TrialState.PRUNED, None, "20k"), (TrialState.COMPLETE, 0.60, "50k"),
            (TrialState.FAIL, None, "50k"), (TrialState.COMPLETE, 0.58, "20k")]
    for k, (state, value, budget) in enumerate(spec):
        reported = None if value is None else value - 0.01
        record = TrialRecord(budget=budget) if reported is None else TrialRecord(
            budget=budget, best_baseline="logistic",
            evidence={"best/val/auroc": reported, "best/val/auroc_ci_low": reported - 0.06 - 0.01 * k,
                      "best/val/auroc_ci_high": reported + 0.05, "baseline/best/val/auroc": 0.53})
        study.add_trial(create_trial(
            state=state, value=value, params={"budget": budget, "lr": 1e-3 * (k + 1)}, distributions=SPACE,
            intermediate_values={0: 0.47, 1: 0.49} if state == TrialState.PRUNED else None,
            user_attrs=record.attrs()))
    return study.get_trials()


def test_history_marks_each_state_whole_trial_numbers_the_null_and_chance():
    trials = study_trials()
    points = parent.trial_points(trials)
    assert [(p.number, p.state, p.value) for p in points] == [
        (0, "COMPLETE", 0.56), (1, "PRUNED", 0.49), (2, "COMPLETE", 0.60), (3, "FAIL", None), (4, "COMPLETE", 0.58)]
    fig = plotting.history_figure("s: optimisation history", points, "objective", plotting.Null(0.615, 3))
    (ax,) = fig.axes
    markers = {line.get_marker(): list(line.get_xdata()) for line in ax.get_lines() if line.get_linestyle() == "None"}
    assert markers == {"o": [0, 2, 4], "x": [1], "v": [3]}
    best = next(line for line in ax.get_lines() if line.get_label() == "best so far")
    assert list(best.get_ydata()) == [0.56, 0.60, 0.60]
    (null,) = level_lines(ax, 0.615)
    assert "selection null" in null.get_label() and "best of 3 random scorers" in null.get_label()
    assert level_lines(ax, 0.5)
    assert holds(ax.get_ylim(), [0.49, 0.56, 0.60, 0.615, 0.5])
    rendered(fig)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert {"complete", "pruned (last reported value)", "failed (no value)"} <= set(legend_texts(fig))
    folds = plotting.history_figure("s", points, "objective", plotting.Null(0.615, 12, 3))
    (null,) = level_lines(folds.axes[0], 0.615)
    assert "best of 12 random scorers over 3 folds, mean of each fold's best" in null.get_label()


def test_per_budget_points_carry_their_intervals_the_baseline_and_chance():
    trials = study_trials()
    fig = parent._per_budget(parent.counted(trials))
    (ax,) = fig.axes
    (segments,) = ax.collections
    # the best of 20k is trial 4 (0.58), of 50k trial 2 (0.60): their val_report intervals, in budget order
    np.testing.assert_allclose(segments.get_segments(), [[[0, 0.57 - 0.10], [0, 0.62]], [[1, 0.59 - 0.08], [1, 0.64]]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20k", "50k"]
    assert holds(ax.get_ylim(), [0.47, 0.62, 0.51, 0.64, 0.53, 0.5])
    assert "best baseline: logistic 0.530" in legend_texts(fig)
    assert level_lines(ax, 0.53) and level_lines(ax, 0.5)
    assert not ax.patches  # points with intervals, no bars
    assert title_fits(fig)


def test_groups_with_different_baselines_name_each():
    baselines = [plotting.Baseline("logistic", plotting.Estimate(0.52)),
                 plotting.Baseline("boosting", plotting.Estimate(0.61))]
    fig = plotting.groups_figure("t", ["a", "b"], [plotting.Estimate(0.55, 0.50, 0.58)] * 2, baselines, "x", "AUROC")
    (ax,) = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == ["boosting", "logistic"]
    assert "best baseline of each group's samples" in legend_texts(fig)
    assert holds(ax.get_ylim(), [0.50, 0.58, 0.52, 0.61])


def test_a_long_title_is_wrapped_inside_the_figure():
    title = "each budget's best trial (chosen by best/val_select/auroc) on val_report, " * 3
    fig = plotting.groups_figure(title, ["a"], [plotting.Estimate(0.55, 0.5, 0.6)], [None], "x", "AUROC")
    assert fig._suptitle.get_text().count("\n") >= 2
    assert title_fits(fig)


def test_the_ablation_plot_holds_every_interval_and_names_the_baselines():
    rows = []
    for model, shift in (("itransformer", 0.0), ("patchtst", 0.03)):
        for size, name in ((20, "logistic"), (60, "boosting")):
            row = dict.fromkeys(COLUMNS)
            row.update(model=model, input_size=size, seeds=2, val_auroc=0.55 + shift, val_auroc_ci_low=0.47 + shift,
                       val_auroc_ci_high=0.63 + shift, baseline_auroc=0.52, baseline_ci_low=0.45,
                       baseline_ci_high=0.66, best_baseline=name)
            rows.append(row)
    summary = Summary(pd.DataFrame(rows, columns=COLUMNS), [], {}, ("2020-01-01", "2020-12-31"), 250, 5, 100, "t")
    fig = plot(summary, "ablation-a20-itransformer,patchtst-0123456789")
    (ax,) = fig.axes
    assert holds(ax.get_ylim(), [0.47, 0.66, 0.45, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20\nlogistic", "60\nboosting"]
    assert "best baseline (named under each x), 95% CI" in legend_texts(fig) and level_lines(ax, 0.5)
    assert {"itransformer", "patchtst"} <= set(legend_texts(fig))
    assert title_fits(fig)


@pytest.fixture
def evaluation():
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.4).astype(float)
    model = np.clip(0.4 + 0.2 * labels + rng.normal(0, 0.15, 200), 0, 1)
    baselines = {"majority": np.full(200, 0.4),
                 "logistic": np.clip(0.4 + 0.1 * labels + rng.normal(0, 0.15, 200), 0, 1)}
    return evaluate("test", labels, pd.bdate_range("2020-01-01", periods=200), model, baselines,
                    best_baseline="logistic", setting=Setting(2, labels, 0))


def test_roc_legend_gives_each_auroc_its_interval_and_names_the_best_baseline(evaluation):
    ev = evaluation
    fig = figures(ev, "test (ensemble)")["plots/test_roc.png"]
    texts = legend_texts(fig)
    low, high = ev.intervals.ci["model"]
    assert f"model AUROC {ev.intervals.point['model']:.3f} [{low:.3f}, {high:.3f}]" in texts
    assert any(t.startswith("best baseline: logistic AUROC ") for t in texts)
    assert "chance (AUROC 0.5)" in texts


def test_calibration_bins_carry_their_counts(evaluation):
    ev = evaluation
    fig = figures(ev, "test (ensemble)")["plots/test_calibration.png"]
    (ax,) = fig.axes
    # equal-count bins: their one size in the legend
    assert {"raw: 10 bins, 20 samples each", "calibrated: 10 bins, 20 samples each"} <= set(legend_texts(fig))
    assert not [t for t in ax.texts if t.get_text().isdigit()]
    fig = plotting.calibration_figure("t", {"raw": [plotting.CalibrationBin(0.2, 0.1, 5),
                                                    plotting.CalibrationBin(0.6, 0.7, 500)]}, 0.4)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts if t.get_text().isdigit()] == ["5", "500"]  # sizes that differ: beside
    assert "raw: 2 bins, samples beside each" in legend_texts(fig)
    (points,) = ax.collections
    small, large = points.get_sizes()
    assert large > 5 * small  # a bin of 500 samples looks heavier than one of 5


def test_audit_figures_mark_states_draw_the_null_intervals_and_the_baseline():
    trials = [TrialData(t) for t in study_trials()]
    gaps = [checks.GapRow(2, None, 0.70, 0.59, 0.11, 3), checks.GapRow(4, None, 0.66, 0.57, 0.09, 3)]
    hits = [checks.BoundaryHit("lr", "high", [1e-4, 1e-2, "log"], 2, 3, 0.4, [2, 4], [3e-3, 5e-3], 0.01, 0.02, 2),
            checks.BoundaryHit("budget", "low", ["20k", "50k"], 2, 3, 0.6, [0, 4], ["20k", "20k"], 0.01, 0.02, 2)]
    report = checks.Report(
        checks.States(5, {}, [], {}), hits, checks.OverfitGap(gaps, 0.1, 0.11, [2], 0.1, []),
        checks.Importances("fanova", {"lr": 0.8, "budget": 0.2}, []), [],
        checks.ByBudget([checks.BudgetBest("20k", "searched", 3, 4, 0.58, 0.57, 0.47, 0.62, None)], [], "holm", []),
        checks.Selection(4, "best/val_select/auroc", "val_select", 0.58, 3, 3, "m", 0.605))
    out = audit_figures("s", report, trials)
    assert set(out) == {"optimization_history", "importances", "overfit_gap", "by_budget", "boundary_hits"}
    ax = out["optimization_history"].axes[0]
    assert {line.get_marker() for line in ax.get_lines() if line.get_linestyle() == "None"} == {"o", "x", "v"}
    assert level_lines(ax, 0.605)
    ax = out["overfit_gap"].axes[0]
    (segments,) = [c for c in ax.collections if hasattr(c, "get_segments")]
    np.testing.assert_allclose(segments.get_segments(), [[[0.59 - 0.08, 0.70], [0.64, 0.70]],
                                                         [[0.57 - 0.10, 0.66], [0.62, 0.66]]])
    assert holds(ax.get_xlim(), [0.47, 0.64, 0.5, 0.53])
    assert "best baseline: logistic 0.530" in legend_texts(out["overfit_gap"])
    ax = out["by_budget"].axes[0]
    assert holds(ax.get_ylim(), [0.47, 0.62, 0.53, 0.5]) and level_lines(ax, 0.53) and level_lines(ax, 0.5)
    lr, budget = out["boundary_hits"].axes
    assert holds(lr.get_xlim(), [1e-4, 1e-2]) and lr.get_xscale() == "log"  # the searched range shown
    assert [t.get_text() for t in budget.get_xticklabels()] == ["20k", "50k"]  # every choice, in order
    (points,) = [line for line in budget.get_lines() if line.get_marker() == "o"]
    assert list(points.get_xdata()) == [0, 1, 0]  # trials 0, 2, 4
    for fig in out.values():
        assert title_fits(fig)
