"""What each backbone declares beside its code: the hyper-parameters it reads, its capabilities,
defaults, search space and budget styles; plus the shape checks they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models.space import Categorical, Dimension, Float, Int

# ModelConfig's fields other than `name` (models must not import training; a test keeps them in sync).
HP_NAMES = (
    "hidden_size", "n_layers", "n_heads", "ff_mult", "dropout", "patch_len", "stride", "factor", "feature_proj",
)
STYLE_NAMES = ("shallow-wide", "balanced", "deep-narrow")


@dataclass(frozen=True)
class Style:
    """How a parameter budget becomes a shape: `n_layers` is fixed, `hidden_size` is the largest multiple of
    `hidden_step` that fits (solved in models.params), and `n_heads` follows from it (about `head_dim` per head)."""

    n_layers: int
    head_dim: int = 32
    max_heads: int = 16
    hidden_step: int = 16
    max_hidden: int = 16384

    def __post_init__(self):
        if self.max_heads & (self.max_heads - 1) or self.hidden_step % self.max_heads:
            raise ValueError("max_heads must be a power of two dividing hidden_step")

    def n_heads(self, hidden_size: int) -> int:
        # a power of two in [2, max_heads]: it divides every multiple of hidden_step
        target = max(2, min(self.max_heads, hidden_size // self.head_dim))
        return 1 << (target.bit_length() - 1)

    def hidden_grid(self) -> range:
        return range(self.hidden_step, self.max_hidden + 1, self.hidden_step)

    def shape(self, hidden_size: int) -> dict[str, int]:
        return {"n_layers": self.n_layers, "hidden_size": hidden_size, "n_heads": self.n_heads(hidden_size)}


# One depth per style for every architecture, so that a style means the same thing across models.
# the encoder dimensions every backbone searches; a backbone's own (patches, sampling factor) come beside
ENCODER_SPACE: dict[str, Dimension] = {
    "hidden_size": Categorical((32, 64, 128, 256)),
    "n_layers": Int(1, 4),
    "n_heads": Categorical((2, 4, 8)),
    "ff_mult": Categorical((1, 2, 4)),
    "dropout": Float(0.0, 0.4),
}

STYLES = {"shallow-wide": Style(n_layers=1), "balanced": Style(n_layers=3), "deep-narrow": Style(n_layers=8)}


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., nn.Module]  # build(n_features, input_size, **params) -> module with `out_dim`
    defaults: dict[str, object]  # one value for every ModelConfig field the backbone reads
    search_space: dict[str, Dimension]
    styles: dict[str, Style]
    channel_independent: bool = False  # one shared encoder per feature channel: cost grows linearly with F
    variate_tokens: bool = False  # features are attention tokens: cost grows with F squared
    uses_patches: bool = False  # reads patch_len (and stride for PatchTST)
    sampled_attention: bool = False  # random key sampling in training; seeded (deterministic) in eval
    batch_norm: bool = False  # has BatchNorm: outputs in training depend on batch neighbours

    @property
    def params(self) -> tuple[str, ...]:
        """The ModelConfig fields the backbone reads."""
        return tuple(self.defaults)

    def __post_init__(self):
        if set(self.params) - set(HP_NAMES) or not set(self.search_space) <= set(self.params):
            raise ValueError(f"{self.name}: defaults and search space disagree with ModelConfig")
        if tuple(self.styles) != STYLE_NAMES:
            raise ValueError(f"{self.name}: styles must be {', '.join(STYLE_NAMES)}")


def check_common(
    name: str, n_features: int, input_size: int, hidden_size: int, n_layers: int, n_heads: int,
    ff_mult: int, dropout: float,
) -> None:
    """Raise one clear ValueError for a shape the transformer layers cannot take."""
    for label, value in [("n_features", n_features), ("input_size", input_size), ("hidden_size", hidden_size),
                         ("n_layers", n_layers), ("n_heads", n_heads), ("ff_mult", ff_mult)]:
        if value < 1:
            raise ValueError(f"{name}: {label} must be >= 1, got {value}")
    if hidden_size % n_heads:
        raise ValueError(f"{name}: hidden_size {hidden_size} is not divisible by n_heads {n_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")


def check_patch(name: str, input_size: int, patch_len: int, stride: int | None = None) -> None:
    if patch_len < 1 or (stride is not None and stride < 1):
        raise ValueError(f"{name}: patch_len and stride must be >= 1, got {patch_len}, {stride}")
    if patch_len > input_size:
        raise ValueError(f"{name}: patch_len {patch_len} is longer than input_size {input_size}")


def check_even(name: str, hidden_size: int) -> None:
    # neuralforecast's sinusoidal PositionalEmbedding pairs sin/cos columns
    if hidden_size % 2:
        raise ValueError(f"{name}: hidden_size must be even for the sinusoidal position embedding, got {hidden_size}")
