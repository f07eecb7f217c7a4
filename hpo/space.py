"""A study's search space: the budget, the depth within it (the width is solved to the widest that fits:
`models.budgets`), the backbone's declared dimensions, regularisation and focal loss; as Optuna
suggestions and as `RunConfig` overrides.

What is searched is what the backbone declares (`BackboneSpec.search_space`), with the differences made
here, each read from a declared capability: patch lengths above the input size are dropped
(`uses_patches`), and `feature_proj` is searched where the cost grows with the number of features
(`tokens_per_feature`) and there are more features than its largest choice.

Every draw is feasible: a budget's depth ranges over 1 .. the deepest shape that fits the budget with the
searched dimensions at their most expensive; a budget where not even one layer fits is refused before the
study starts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conventions.errors import UserError
from models.backbones.spec import FEATURE_PROJ
from models.budgets import MAX_LAYERS, MIN_WIDTH, SHAPE_KEYS, count_params, n_heads, parse_budget
from models.registry import get_spec
from models.space import Categorical, Dimension, Float, Int
from training.config import RunConfig

if TYPE_CHECKING:
    import optuna  # not imported at run time: the dry run stays light

TRAINING_SPACE: dict[str, tuple[str, Dimension]] = {
    "lr": ("train.lr", Float(1e-5, 1e-2, log=True)),
    "weight_decay": ("train.weight_decay", Float(1e-6, 1e-2, log=True)),
}
FOCAL_SPACE: dict[str, tuple[str, Dimension]] = {
    "focal_gamma": ("train.focal_gamma", Float(0.0, 5.0)),
    "focal_alpha": ("train.focal_alpha", Float(0.1, 0.9)),
}


def depth_param(budget: str) -> str:
    """The depth is searched per budget (its range depends on the budget): `n_layers_2M`."""
    return f"n_layers_{budget}"


@dataclass
class SearchSpace:
    budgets: tuple[str, ...]
    depths: dict[str, int]  # budget -> the deepest feasible n_layers
    dims: dict[str, tuple[str, Dimension]] = field(default_factory=dict)  # param -> (config key, dimension)

    @classmethod
    def build(cls, base: RunConfig, budgets: list[str], pinned: set[str], n_features: int) -> SearchSpace:
        """`pinned`: config keys the user set explicitly (`--set`); they are not searched. The shape is
        decided per budget (depth searched, width and heads solved), so it cannot be pinned."""
        shape = sorted(k for k in pinned if k.removeprefix("model.") in SHAPE_KEYS)
        if shape:
            raise UserError(f"--set {', '.join(shape)}: a study decides the shape per budget (the depth searched, "
                            "the width and heads solved to fit); train one shape with `python -m training`")
        spec = get_spec(base.model.name)
        dims: dict[str, tuple[str, Dimension]] = {}
        for name, dim in spec.search_space.items():
            if name == "patch_len" and spec.uses_patches:
                dim = Categorical(tuple(c for c in dim.choices if c <= base.data.input_size) or (base.model.patch_len,))
            dims[name] = (f"model.{name}", dim)
        if spec.tokens_per_feature and n_features > max(FEATURE_PROJ.choices):
            dims["feature_proj"] = ("model.feature_proj", FEATURE_PROJ)
        dims |= TRAINING_SPACE
        if base.train.loss == "focal":
            dims |= FOCAL_SPACE
        dims = {n: (k, d) for n, (k, d) in dims.items() if k not in pinned}
        depths = _depth_limits(base, dims, n_features, budgets)
        too_small = [b for b, d in depths.items() if d == 0]
        if too_small:
            raise UserError(f"budget {too_small[0]} is too small for any {base.model.name} shape over the searched "
                            f"space (one layer of width {MIN_WIDTH} at its most expensive settings does not fit)")
        return cls(tuple(budgets), depths, dims)

    def suggest(self, trial: optuna.Trial, shape: bool = True) -> dict[str, object]:
        """Every searched param; `shape=False` leaves out budget and depth (a transferred config's trial)."""
        values: dict[str, object] = {}
        if shape:
            budget = trial.suggest_categorical("budget", self.budgets)
            values = {"budget": budget,
                      "n_layers": trial.suggest_int(depth_param(budget), 1, self.depths[budget])}
        for name, (_, dim) in self.dims.items():
            if isinstance(dim, Categorical):
                values[name] = trial.suggest_categorical(name, dim.choices)
            elif isinstance(dim, Int):
                values[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
            else:
                values[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        return values

    def values_of(self, cfg: RunConfig) -> dict[str, object]:
        """Every searched param (budget and depth aside) at its value in `cfg`."""
        return {name: _get(cfg, key) for name, (key, _) in self.dims.items()}

    def apply(self, cfg: RunConfig, values: dict[str, object]) -> RunConfig:
        return cfg.override({self.dims[n][0]: v for n, v in values.items() if n in self.dims})

    def describe(self) -> list[str]:
        lines = [f"  {'budget':<13} categorical  {', '.join(self.budgets)}",
                 f"  {'n_layers':<13} int          per budget: "
                 + ", ".join(f"{b} [1, {d}]" for b, d in self.depths.items())
                 + "; hidden_size and n_heads: the widest that fits"]
        for name, (key, dim) in self.dims.items():
            lines.append(f"  {name:<13} {_describe(dim)}  -> {key}")
        return lines


def _depth_limits(base: RunConfig, dims: dict[str, tuple[str, Dimension]], n_features: int,
                  budgets: list[str]) -> dict[str, int]:
    """Per budget, the deepest n_layers at which the narrowest shape fits for every combination of the
    searched model fields' choices (range ends for numbers). The count at the narrowest width is
    a + b * (n_layers - 1) for each combination (Informer's distilling makes it grow slower: the limit is
    then conservative)."""
    searched = {k.split(".", 1)[1]: d for k, d in dims.values() if k.startswith("model.") and k != "model.dropout"}
    options = {n: d.choices if isinstance(d, Categorical) else (d.low, d.high) for n, d in searched.items()}
    lines = []
    for combo in itertools.product(*options.values()):
        hp = {**base.model.hp, **dict(zip(options, combo, strict=True)),
              "hidden_size": MIN_WIDTH, "n_heads": n_heads(MIN_WIDTH)}
        one, two = (count_params(base.model.name, n_features, base.data.input_size, **{**hp, "n_layers": d})
                    for d in (1, 2))
        lines.append((one, max(two - one, 1)))
    limits = {}
    for budget in budgets:
        limit = parse_budget(budget)
        limits[budget] = min(0 if a > limit else min(MAX_LAYERS, (limit - a) // b + 1) for a, b in lines)
    return limits


def _get(cfg: RunConfig, key: str) -> object:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def _describe(dim: Dimension) -> str:
    if isinstance(dim, Categorical):
        return f"categorical  {', '.join(map(str, dim.choices))}"
    kind = "int" if isinstance(dim, Int) else "float"
    scale = " log" if dim.log else ""
    return f"{kind:<11}  [{_fmt(dim.low)}, {_fmt(dim.high)}]{scale}"


def _fmt(x: float) -> str:
    return f"{x:g}" if x == 0 or 1e-3 <= abs(x) < 1e4 or not math.isfinite(x) else f"{x:.0e}"
