"""`--dry-run`: the forced configs and the search space with exact parameter counts per budget and style;
nothing is trained, no study or run is written."""

from __future__ import annotations

from datamodules import tiers
from hpo import phase2
from hpo.budgets import EXTREMES, STYLES, forced_configs, parse_budget
from hpo.space import SearchSpace
from hpo.study import StudySettings, shapes_of
from training.config import RunConfig


def n_features_of(cfg: RunConfig) -> int:
    """From the tier's feature list (tier `file`: the table's numeric columns), without building features."""
    return len(tiers.feature_names(cfg.data.tier, cfg.data.path))


def report(settings: StudySettings, n_features: int) -> str:
    base, name, budgets = settings.base, settings.study_name, settings.budgets
    if settings.supplementary:
        plan = phase2.plan(settings.storage, name)
        name, budgets = plan.name, plan.budgets
    shapes = shapes_of(base, budgets, n_features)
    space = SearchSpace.build(base, budgets, STYLES, set(settings.pinned))
    forced = forced_configs(shapes, space.values_of(base)) if settings.forced_extremes else []
    first = ([f"the transferred config ({settings.transfer})"] if settings.transfer else []) + (
        [f"{len(forced)} forced configs"] if forced else [])
    out = [
        f"dry run of study {name!r}: nothing is trained, no study or run is written",
        f"model {base.model.name}, tier {base.data.tier} ({n_features} features), input size {base.data.input_size}",
        f"trials: {settings.trials}" + (f"; first {' then '.join(first)}" if first else "")
        + f", then TPE; stop {_stop(settings)}",
        "",
        "shapes: the largest of each style within each budget (exact parameter counts of the classifier)"
        + (f", at {_fixed(base, space)}" if _fixed(base, space) else ""),
        f"  {'budget':<8} {'style':<13} {'hidden':>6} {'layers':>6} {'heads':>5} {'params':>13} {'of budget':>9}",
    ]
    for (budget, style), shape in shapes.items():
        if shape is None:
            out.append(f"  {budget:<8} {style:<13} {'no shape of this style fits':>53}")
        else:
            out.append(f"  {budget:<8} {style:<13} {shape.hidden_size:>6} {shape.n_layers:>6} {shape.n_heads:>5} "
                       f"{shape.count:>13,} {shape.count / parse_budget(budget):>9.1%}")
    if settings.forced_extremes:
        out += ["", f"forced configs ({len(forced)} = budgets x styles x regularisation "
                    f"{' / '.join(f'{r.name} (dropout {r.dropout:g}, lr {r.lr:g}, weight decay {r.weight_decay:g})' for r in EXTREMES)}):"]
        for i, f in enumerate(forced):
            rest = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in f.params.items() if k not in ("budget", "style"))
            out.append(f"  {i:>2}  {f.shape.budget:<6} {f.shape.style:<13} {f.regularisation.name:<6} "
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
    return f"after the trials, or when the best val AUROC has not improved by {c.threshold:g} in {c.patience} completed trials"
