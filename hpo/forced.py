"""The forced grid: budgets x styles x the two regularisation extremes, run first (`--forced-extremes`) so
that budgets and styles compare at both ends of regularisation. A (budget, style) whose shape does not fit,
or is the same model as a smaller budget's (see `models.budgets.StyleGrid`), is left out."""

from __future__ import annotations

from dataclasses import dataclass

from models.budgets import STYLES, Shape, StyleGrid


@dataclass(frozen=True)
class Regularisation:
    name: str
    dropout: float
    lr: float
    weight_decay: float


# The research's default (strong) and its opposite; both lie inside the searched ranges (hpo/space.py).
EXTREMES = (
    Regularisation("strong", dropout=0.5, lr=1e-4, weight_decay=1e-3),
    Regularisation("weak", dropout=0.0, lr=1e-3, weight_decay=1e-6),
)


@dataclass(frozen=True)
class ForcedConfig:
    shape: Shape
    style: str
    regularisation: Regularisation
    params: dict  # the Optuna params to enqueue: budget, depth, the extreme, the rest at the base config


def forced_configs(grid: StyleGrid, base_values: dict, depth_param) -> list[ForcedConfig]:
    """Distinct shapes x the two extremes, in budgets x styles order. `base_values` holds every searched
    param at the base config's value; an extreme sets dropout, lr and weight decay where they are searched
    (a pinned one keeps its pinned value); `depth_param(budget)` names the budget's depth param."""
    out = []
    for (budget, style), shape in grid.shapes.items():
        if shape is None or (budget, style) in grid.repeats:
            continue
        for reg in EXTREMES:
            extreme = {"dropout": reg.dropout, "lr": reg.lr, "weight_decay": reg.weight_decay}
            params = {"budget": budget, depth_param(budget): STYLES[style], **base_values,
                      **{k: v for k, v in extreme.items() if k in base_values}}
            out.append(ForcedConfig(shape, style, reg, params))
    return out
