"""`--dry-run`: the forced configs and the search space with exact parameter counts per budget and style;
nothing is trained, no study or run is written, and neither MLflow nor Optuna is imported (a phase-2 dry
run aside: it reads the phase-1 study)."""

from __future__ import annotations

from datamodules import tiers
from hpo.forced import EXTREMES, forced_configs
from hpo.settings import StudySettings
from hpo.space import SearchSpace, depth_param
from models.budgets import parse_budget
from training.config import RunConfig


def n_features_of(cfg: RunConfig) -> int:
    """From the tier's feature list (tier `file`: the table's numeric columns), without building features."""
    return len(tiers.feature_names(cfg.data.tier, cfg.data.path))


def report(settings: StudySettings, n_features: int) -> str:
    base, name, budgets = settings.base, settings.study_name, settings.budgets
    if settings.supplementary:
        from hpo import phase2

        plan = phase2.plan(settings.storage, name)
        name, budgets = plan.name, plan.budgets
    grid = settings.grid(budgets, n_features)
    space = SearchSpace.build(base, budgets, set(settings.pinned), n_features)
    forced = forced_configs(grid, space.values_of(base), depth_param) if settings.forced_extremes else []
    first = ([f"the transferred config ({settings.transfer})"] if settings.transfer else []) + (
        [f"{len(forced)} forced configs"] if forced else [])
    out = [
        f"dry run of study {name!r}: nothing is trained, no study or run is written",
        f"model {base.model.name}, tier {base.data.tier} ({n_features} features), input size {base.data.input_size}",
        f"trials: {settings.trials}" + (f"; first {' then '.join(first)}" if first else "")
        + f", then TPE; stop {_stop(settings)}",
        *([f"each trial trains {base.data.folds} models, one per walk-forward fold ({base.data.window} window); "
           "its value is the mean of their val_select AUROCs"] if base.data.folds > 1 else []),
        "",
        "shapes: the widest of each style's depth within each budget (exact parameter counts of the classifier)"
        + (f", at {_fixed(base, space)}" if _fixed(base, space) else ""),
        f"  {'budget':<8} {'style':<13} {'hidden':>6} {'layers':>6} {'heads':>5} {'params':>13} {'of budget':>9}",
    ]
    for (budget, style), shape in grid.shapes.items():
        if shape is None:
            out.append(f"  {budget:<8} {style:<13} {'no shape of this depth fits':>53}")
            continue
        repeat = grid.repeats.get((budget, style))
        note = f"  same model as {repeat}: not run again" if repeat else ""
        out.append(f"  {budget:<8} {style:<13} {shape.hidden_size:>6} {shape.n_layers:>6} {shape.n_heads:>5} "
                   f"{shape.count:>13,} {shape.count / parse_budget(budget):>9.1%}{note}")
    if settings.forced_extremes:
        extremes = " / ".join(f"{r.name} (dropout {r.dropout:g}, lr {r.lr:g}, weight decay {r.weight_decay:g})"
                              for r in EXTREMES)
        out += ["", f"forced configs ({len(forced)} = distinct budget x style shapes x regularisation {extremes}):"]
        for i, f in enumerate(forced):
            rest = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in f.params.items() if k != "budget" and not k.startswith("n_layers_"))
            out.append(f"  {i:>2}  {f.shape.budget:<6} {f.style:<13} {f.regularisation.name:<6} "
                       f"{f.shape.count:>13,} params  {rest}")
    out += ["", "search space (TPE):", *space.describe()]
    if settings.pinned:
        out.append(f"  pinned by --set: {', '.join(sorted(settings.pinned))}")
    return "\n".join(out)


def _fixed(base: RunConfig, space: SearchSpace) -> str:
    """The searched model fields that change a count, at the values the table uses."""
    keys = [k for k, _ in space.dims.values() if k.startswith("model.") and k != "model.dropout"]
    return ", ".join(f"{k.split('.', 1)[1]}={getattr(base.model, k.split('.', 1)[1])}" for k in keys)


def _stop(settings: StudySettings) -> str:
    if settings.convergence is None:
        return "after the trials"
    c = settings.convergence
    return (f"after the trials, or when the best objective gained less than {c.threshold:g} over the last "
            f"{c.patience} finished trials")
