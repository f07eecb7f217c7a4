"""A study's search space: `budget` and `style` (solved to a shape in the objective), regularisation, focal
loss, and the backbone's own non-shape dimensions; as Optuna suggestions and as `RunConfig` overrides."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna

from hpo.budgets import SHAPE_KEYS
from models.registry import get_spec
from models.space import Categorical, Dimension, Float, Int
from training.config import RunConfig

# Wide enough to hold both regularisation extremes (hpo/budgets.py); these replace the backbone's dropout.
TRAINING_SPACE: dict[str, tuple[str, Dimension]] = {
    "dropout": ("model.dropout", Float(0.0, 0.5)),
    "lr": ("train.lr", Float(1e-5, 1e-2, log=True)),
    "weight_decay": ("train.weight_decay", Float(1e-6, 1e-2, log=True)),
}
FOCAL_SPACE: dict[str, tuple[str, Dimension]] = {
    "focal_gamma": ("train.focal_gamma", Float(0.0, 5.0)),
    "focal_alpha": ("train.focal_alpha", Float(0.1, 0.9)),
}


@dataclass
class SearchSpace:
    budgets: tuple[str, ...]
    styles: tuple[str, ...]
    dims: dict[str, tuple[str, Dimension]] = field(default_factory=dict)  # param -> (config key, dimension)

    @classmethod
    def build(cls, base: RunConfig, budgets: list[str], styles: tuple[str, ...], pinned: set[str]) -> SearchSpace:
        """`pinned`: config keys the user set explicitly (`--set`); they are not searched."""
        dims: dict[str, tuple[str, Dimension]] = {}
        for name, dim in get_spec(base.model.name).search_space.items():
            if name in SHAPE_KEYS or name in TRAINING_SPACE:
                continue
            if name == "patch_len":  # a patch longer than the window cannot be built
                dim = Categorical(tuple(c for c in dim.choices if c <= base.data.input_size) or (base.model.patch_len,))
            dims[name] = (f"model.{name}", dim)
        dims |= TRAINING_SPACE
        if base.train.loss == "focal":
            dims |= FOCAL_SPACE
        return cls(tuple(budgets), tuple(styles), {n: (k, d) for n, (k, d) in dims.items() if k not in pinned})

    def suggest(self, trial: optuna.Trial, shape: bool = True) -> dict[str, object]:
        """Every searched param; `shape=False` leaves out budget and style (a transferred config's trial)."""
        values: dict[str, object] = {}
        if shape:
            values = {"budget": trial.suggest_categorical("budget", self.budgets),
                      "style": trial.suggest_categorical("style", self.styles)}
        for name, (_, dim) in self.dims.items():
            if isinstance(dim, Categorical):
                values[name] = trial.suggest_categorical(name, dim.choices)
            elif isinstance(dim, Int):
                values[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
            else:
                values[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        return values

    def values_of(self, cfg: RunConfig) -> dict[str, object]:
        """Every searched param (budget and style aside) at its value in `cfg`."""
        return {name: _get(cfg, key) for name, (key, _) in self.dims.items()}

    def apply(self, cfg: RunConfig, values: dict[str, object]) -> RunConfig:
        return cfg.override({self.dims[n][0]: v for n, v in values.items() if n in self.dims})

    def describe(self) -> list[str]:
        lines = [f"  {'budget':<13} categorical  {', '.join(self.budgets)}",
                 f"  {'style':<13} categorical  {', '.join(self.styles)}"]
        for name, (key, dim) in self.dims.items():
            lines.append(f"  {name:<13} {_describe(dim)}  -> {key}")
        return lines


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
