"""What each backbone declares beside its code: the `ModelConfig` fields it reads, its own defaults for
them, its search space and its capabilities (read by `hpo.space`); plus the shape checks they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from conventions.errors import UserError
from models.config import HP_NAMES
from models.space import Categorical, Dimension, Float

# What every transformer backbone searches besides its shape. The shape (hidden_size, n_layers, n_heads)
# is not a search dimension: `models.budgets` solves it from the parameter budget.
ENCODER_SPACE: dict[str, Dimension] = {
    "ff_mult": Categorical((1, 2, 4)),
    "dropout": Float(0.0, 0.5),
}
ENCODER_READS = ("hidden_size", "n_layers", "n_heads", "ff_mult", "dropout")
# Searched for backbones whose cost grows with the number of features, when there are more features than
# the largest choice: a learned projection F -> k before the backbone (see models.registry).
FEATURE_PROJ = Categorical((0, 16, 32))


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., nn.Module]  # build(n_features, input_size, **params) -> module with `out_dim`
    reads: tuple[str, ...]  # the ModelConfig fields the backbone takes (feature_proj is the registry's)
    search_space: dict[str, Dimension]
    defaults: dict[str, object] | None = None  # the backbone's own defaults where ModelConfig's differ
    # capabilities, read by hpo.space:
    tokens_per_feature: bool = False  # a token or channel per feature: cost grows with F, so feature_proj is searched
    uses_patches: bool = False  # reads patch_len: its choices are limited to the input size

    def __post_init__(self):
        own = set(self.defaults or {}) | set(self.search_space)
        if set(self.reads) - set(HP_NAMES) or not own <= set(self.reads):
            raise ValueError(f"{self.name}: defaults and search space must name fields it reads, of ModelConfig")
        if self.uses_patches != ("patch_len" in self.reads):
            raise ValueError(f"{self.name}: uses_patches must say whether it reads patch_len")


def check_common(
    name: str, n_features: int, input_size: int, hidden_size: int, n_layers: int, n_heads: int,
    ff_mult: int, dropout: float,
) -> None:
    """Raise one clear UserError for a shape the transformer layers cannot take."""
    for label, value in [("n_features", n_features), ("input_size", input_size), ("hidden_size", hidden_size),
                         ("n_layers", n_layers), ("n_heads", n_heads), ("ff_mult", ff_mult)]:
        if value < 1:
            raise UserError(f"{name}: {label} must be >= 1, got {value}")
    if hidden_size % n_heads:
        raise UserError(f"{name}: hidden_size {hidden_size} is not divisible by n_heads {n_heads}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"{name}: dropout must be in [0, 1), got {dropout}")


def check_patch(name: str, input_size: int, patch_len: int, stride: int | None = None) -> None:
    if patch_len < 1 or (stride is not None and stride < 1):
        raise UserError(f"{name}: patch_len and stride must be >= 1, got {patch_len}, {stride}")
    if patch_len > input_size:
        raise UserError(f"{name}: patch_len {patch_len} is longer than input_size {input_size}")


def check_even(name: str, hidden_size: int) -> None:
    # neuralforecast's sinusoidal PositionalEmbedding pairs sin/cos columns
    if hidden_size % 2:
        raise UserError(f"{name}: hidden_size must be even for the sinusoidal position embedding, got {hidden_size}")
