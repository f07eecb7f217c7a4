"""`ModelConfig`: the network's shape and regularisation, the one place of their generic defaults. Each
backbone reads the fields it declares (`BackboneSpec.reads`) and may declare its own defaults for them
(`BackboneSpec.defaults`, applied by `models.registry.default_config`); `training.config.RunConfig` composes
it as its `model` section."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    name: str = "itransformer"
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 2  # feed-forward width = ff_mult * hidden_size
    dropout: float = 0.1
    patch_len: int = 16  # PatchTST, TimeXer
    stride: int = 8  # PatchTST
    factor: int = 3  # Informer ProbSparse sampling factor
    feature_proj: int = 0  # >0: learned projection of the F features to this many channels first

    @property
    def hp(self) -> dict[str, object]:
        """Every field but `name`: the keyword arguments of `build_classifier`."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}


HP_NAMES = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "name")
HP_DEFAULTS = ModelConfig().hp
