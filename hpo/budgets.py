"""Parameter budgets and styles: "750k" -> 750000, (budget, style) -> the largest shape that fits, exact
counts; the regularisation extremes and the forced configs (budgets x styles x extremes)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal

from models.backbones.spec import STYLE_NAMES
from models.params import solve_budget

DEFAULT_BUDGETS = ("750k", "2M", "20M")  # 200M only when asked: `--budgets 750k,2M,20M,200M`
STYLES = STYLE_NAMES  # shallow-wide, balanced, deep-narrow
SHAPE_KEYS = ("hidden_size", "n_layers", "n_heads")  # decided by (budget, style), never searched directly

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_BUDGET = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmgb]?)")


def parse_budget(text: str) -> int:
    """'750k' -> 750000, '1.5M' -> 1500000, '20000' -> 20000 (suffixes k, M, G/B; case-insensitive)."""
    match = _BUDGET.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"unknown budget {text!r}: use a number with an optional k/M/G suffix, e.g. 750k, 2M, 1.5M")
    number, suffix = match.groups()
    value = Decimal(number) * _SUFFIX[suffix]  # exact: 1.1M is 1100000, not 1100000.0000000002
    if value < 1 or value != int(value):
        raise ValueError(f"budget {text!r} is not a positive whole number of parameters")
    return int(value)


def budget_label(n: int) -> str:
    """The canonical name of a budget: 750000 -> '750k', 2000000 -> '2M', 1500000 -> '1.5M'."""
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale and (n * 100) % scale == 0:  # at most two decimals: 1.25M, not 12.345k
            return f"{n / scale:g}{suffix}"
    return str(n)


def parse_budgets(text: str) -> list[str]:
    """'750k,2M' -> canonical labels in ascending size, duplicates removed."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"no budget in {text!r}: give a comma-separated list like 750k,2M,20M")
    return [budget_label(n) for n in sorted({parse_budget(p) for p in parts})]


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
class Shape:
    budget: str
    style: str
    hidden_size: int
    n_layers: int
    n_heads: int
    count: int  # exact parameters of the whole classifier

    @property
    def hp(self) -> dict[str, int]:
        return {"model.hidden_size": self.hidden_size, "model.n_layers": self.n_layers,
                "model.n_heads": self.n_heads}


@functools.cache
def _solve(model: str, budget: str, style: str, n_features: int, input_size: int,
           fixed: tuple[tuple[str, object], ...]) -> Shape:
    hp = solve_budget(model, parse_budget(budget), style, n_features, input_size, **dict(fixed))
    return Shape(budget, style, hp["hidden_size"], hp["n_layers"], hp["n_heads"], hp["count"])


def solve(model: str, budget: str, style: str, n_features: int, input_size: int, **fixed_hp) -> Shape:
    """The largest `style` shape within `budget` (ValueError when none fits); `fixed_hp` are the other
    model fields (ff_mult, patch_len, ...), which change the count."""
    fixed = tuple(sorted((k, v) for k, v in fixed_hp.items() if k not in SHAPE_KEYS))
    return _solve(model, budget, style, n_features, input_size, fixed)


def check_budgets(model: str, budgets: list[str], styles: tuple[str, ...], n_features: int, input_size: int,
                  **fixed_hp) -> dict[tuple[str, str], Shape | None]:
    """Every (budget, style) solved; None where no shape of the style fits. A budget that fits no style
    at all is an error: it could only produce failed trials."""
    shapes: dict[tuple[str, str], Shape | None] = {}
    for budget in budgets:
        errors = []
        for style in styles:
            try:
                shapes[budget, style] = solve(model, budget, style, n_features, input_size, **fixed_hp)
            except ValueError as err:
                shapes[budget, style] = None
                errors.append(str(err))
        if len(errors) == len(styles):
            raise ValueError(f"budget {budget} is too small for any {model} shape: {errors[0]}")
    return shapes


@dataclass(frozen=True)
class ForcedConfig:
    shape: Shape
    regularisation: Regularisation
    params: dict  # the Optuna params to enqueue: budget, style, the extreme, the rest at the base config


def forced_configs(shapes: dict[tuple[str, str], Shape | None], base_values: dict) -> list[ForcedConfig]:
    """budgets x styles x the two extremes, in that order; (budget, style) pairs that fit no shape are left
    out. `base_values` holds every searched param at the base config's value; an extreme sets dropout, lr
    and weight decay where they are searched (a pinned one keeps its pinned value)."""
    out = []
    for (budget, style), shape in shapes.items():
        if shape is None:
            continue
        for reg in EXTREMES:
            extreme = {"dropout": reg.dropout, "lr": reg.lr, "weight_decay": reg.weight_decay}
            params = {"budget": budget, "style": style, **base_values,
                      **{k: v for k, v in extreme.items() if k in base_values}}
            out.append(ForcedConfig(shape, reg, params))
    return out
