"""Parameter budgets and model shapes, in one place: "750k" -> 750000, (budget, depth) -> the widest shape
that fits, exact counts, the named depths ("styles") of the forced grid, and which budgets are feasible.

A shape is (n_layers, hidden_size, n_heads). The depth is chosen (a style's depth, or a searched
`n_layers`); the width is the largest on `WIDTHS` whose whole classifier has at most `budget` parameters
(the count grows with the width), and the head count follows from the width (about `HEAD_DIM` per head,
a power of two in [2, MAX_HEADS], so it divides the width). The fine width grid (steps of 2 below 128)
makes neighbouring budgets give different shapes wherever the budget allows it.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import torch

from conventions.errors import UserError
from models.classifier import build_classifier
from models.config import ModelConfig

DEFAULT_BUDGETS = ("750k", "2M", "20M")  # 200M only when asked: `--budgets 750k,2M,20M,200M`
SHAPE_KEYS = ("hidden_size", "n_layers", "n_heads")  # decided here, never searched directly
STYLES = {"shallow-wide": 1, "balanced": 3, "deep-narrow": 8}  # the forced grid's depths
MAX_LAYERS = 12  # the deepest shape searched
HEAD_DIM, MAX_HEADS, MIN_WIDTH, MAX_WIDTH = 32, 16, 8, 16384

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_BUDGET = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmgb]?)")


def parse_budget(text: str) -> int:
    """'750k' -> 750000, '1.5M' -> 1500000, '20000' -> 20000 (suffixes k, M, G/B; case-insensitive)."""
    match = _BUDGET.fullmatch(text.strip().lower())
    if not match:
        raise UserError(f"unknown budget {text!r}: use a number with an optional k/M/G suffix, e.g. 750k, 2M, 1.5M")
    number, suffix = match.groups()
    value = Decimal(number) * _SUFFIX[suffix]  # exact: 1.1M is 1100000, not 1100000.0000000002
    if value < 1 or value != int(value):
        raise UserError(f"budget {text!r} is not a positive whole number of parameters")
    return int(value)


def budget_label(n: int) -> str:
    """The canonical name of a budget: 750000 -> '750k', 2000000 -> '2M', 1500000 -> '1.5M'."""
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale and (n * 100) % scale == 0:  # at most two decimals: 1.25M, not 12.345k
            return f"{n / scale:g}{suffix}"
    return str(n)


def parse_budgets(text: str) -> list[str]:
    """'750k,2M' -> canonical labels in ascending size; a budget listed twice (e.g. 750k,0.75M) is a `UserError`."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise UserError(f"no budget in {text!r}: give a comma-separated list like 750k,2M,20M")
    sizes = [parse_budget(p) for p in parts]
    twice = sorted({budget_label(n) for n in sizes if sizes.count(n) > 1})
    if twice:
        raise UserError(f"budget {', '.join(twice)} is listed twice in {text!r}: list each budget once")
    return [budget_label(n) for n in sorted(sizes)]


def n_heads(width: int) -> int:
    target = max(2, min(MAX_HEADS, width // HEAD_DIM))
    return 1 << (target.bit_length() - 1)


WIDTHS = tuple(w for w in range(MIN_WIDTH, MAX_WIDTH + 1, 2) if w % n_heads(w) == 0)


@dataclass(frozen=True)
class Shape:
    budget: str
    n_layers: int
    hidden_size: int
    n_heads: int
    count: int  # exact parameters of the whole classifier

    @property
    def hp(self) -> dict[str, int]:
        """As config overrides."""
        return {f"model.{k}": getattr(self, k) for k in SHAPE_KEYS}

    @property
    def key(self) -> tuple[int, int, int]:
        """The model's shape: equal keys (same other settings) are the same model."""
        return self.n_layers, self.hidden_size, self.n_heads


def count_params(name: str, n_features: int, input_size: int, **hp) -> int:
    """Parameters of the whole DirectionClassifier (feature projection + backbone + head), built on the meta
    device: no memory, no RNG use."""
    with torch.device("meta"):
        model = build_classifier(name, n_features, input_size, **hp)
    return sum(p.numel() for p in model.parameters())


def fixed_hp(cfg: ModelConfig) -> tuple[tuple[str, object], ...]:
    """The model fields a shape does not decide (they change the count), hashable."""
    return tuple(sorted((k, v) for k, v in cfg.hp.items() if k not in SHAPE_KEYS))


def solve(cfg: ModelConfig, budget: str, n_layers: int, n_features: int, input_size: int) -> Shape | None:
    """The widest `n_layers`-deep shape of `cfg`'s model within `budget`; None when even the narrowest
    does not fit. `cfg`'s own shape fields are ignored; its other fields (ff_mult, patch_len, ...) count."""
    return _solve(cfg.name, fixed_hp(cfg), parse_budget(budget), budget, n_layers, n_features, input_size)


@functools.cache
def _solve(name, fixed, limit, budget, n_layers, n_features, input_size) -> Shape | None:
    @functools.cache
    def count(i: int) -> int:
        w = WIDTHS[i]
        return count_params(name, n_features, input_size, **dict(fixed), n_layers=n_layers, hidden_size=w,
                            n_heads=n_heads(w))

    # The count is a quadratic in the width (weights are width x width, width x inputs, or constant; the
    # heads split a width without changing it), so three counts place the answer; two more confirm it,
    # and bisection is the fallback should a backbone ever break the rule.
    probes = (0, WIDTHS.index(32), WIDTHS.index(128))
    quadratic = np.polyfit([WIDTHS[i] for i in probes], [count(i) for i in probes], 2)
    over = int(np.searchsorted(np.polyval(quadratic, WIDTHS), limit + 0.5))
    if not ((over == 0 or count(over - 1) <= limit) and (over == len(WIDTHS) or count(over) > limit)):
        over = bisect.bisect_right(range(len(WIDTHS)), limit, key=count)
    if over == 0:
        return None
    w = WIDTHS[over - 1]
    return Shape(budget, n_layers, w, n_heads(w), count(over - 1))


@dataclass
class StyleGrid:
    """Every (budget, style) solved. `shapes[b, s]` is None where the style's depth does not fit the
    budget; `repeats[b, s]` names the smaller budget whose shape of the style is the same model."""

    shapes: dict[tuple[str, str], Shape | None]
    repeats: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)

    def distinct(self) -> list[Shape]:
        """The shapes to run: feasible and not a repeat of a smaller budget's, budgets x styles order."""
        return [s for k, s in self.shapes.items() if s is not None and k not in self.repeats]


def style_grid(cfg: ModelConfig, budgets: list[str], n_features: int, input_size: int) -> StyleGrid:
    """The styles' shapes in every budget. A budget that fits no shape at all is a `UserError`: it could
    only produce failed trials."""
    grid = StyleGrid({})
    seen: dict[tuple[str, tuple], str] = {}
    for budget in budgets:
        if solve(cfg, budget, 1, n_features, input_size) is None:
            smallest = count_params(cfg.name, n_features, input_size, **dict(fixed_hp(cfg)), n_layers=1,
                                    hidden_size=WIDTHS[0], n_heads=n_heads(WIDTHS[0]))
            raise UserError(f"budget {budget} is too small for any {cfg.name} shape: the smallest has "
                            f"{smallest:,} parameters (hidden_size {WIDTHS[0]}, n_layers 1)")
        for style, depth in STYLES.items():
            shape = solve(cfg, budget, depth, n_features, input_size)
            grid.shapes[budget, style] = shape
            if shape is not None:
                if (style, shape.key) in seen:
                    grid.repeats[budget, style] = seen[style, shape.key]
                else:
                    seen[style, shape.key] = budget
    return grid
