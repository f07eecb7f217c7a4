"""Model name -> backbone spec, and the one place that builds a backbone (with the optional feature projection)."""

from __future__ import annotations

import torch
from torch import nn

from conventions.errors import UserError
from models.backbones import informer, itransformer, patchtst, timexer
from models.backbones.spec import BackboneSpec
from models.config import HP_DEFAULTS, HP_NAMES, ModelConfig

_SPECS: dict[str, BackboneSpec] = {m.SPEC.name: m.SPEC for m in (informer, itransformer, patchtst, timexer)}


def available() -> list[str]:
    return sorted(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    if name not in _SPECS:
        raise UserError(f"unknown model {name!r}; known: {', '.join(available())}")
    return _SPECS[name]


def default_config(name: str) -> ModelConfig:
    """ModelConfig's defaults with the backbone's own ones applied."""
    return ModelConfig(name=name, **(get_spec(name).defaults or {}))


def resolve_hp(name: str, **hp) -> dict[str, object]:
    """The fields the backbone reads, from `hp` else its defaults, plus `feature_proj`.

    Any ModelConfig field is accepted (a backbone ignores those it does not read); other names raise.
    """
    unknown = sorted(set(hp) - set(HP_NAMES))
    if unknown:
        raise UserError(f"unknown hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(HP_NAMES)}")
    spec = get_spec(name)
    defaults = {**HP_DEFAULTS, **(spec.defaults or {})}
    return {k: hp.get(k, defaults[k]) for k in (*spec.reads, "feature_proj")}


class FeatureProjection(nn.Module):
    """Linear F -> k on every time step, then the backbone on k channels."""

    def __init__(self, n_features: int, k: int, backbone: nn.Module):
        super().__init__()
        self.proj = nn.Linear(n_features, k)
        self.backbone = backbone
        self.out_dim = backbone.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.proj(x))


def build_backbone(name: str, n_features: int, input_size: int, **hp) -> nn.Module:
    """A [B, input_size, n_features] -> [B, out_dim] encoder; `feature_proj=k > 0` projects F -> k first."""
    hp = resolve_hp(name, **hp)
    k = hp.pop("feature_proj")
    build = get_spec(name).build
    if k < 0:
        raise UserError(f"feature_proj must be >= 0, got {k}")
    if k == 0:
        return build(n_features, input_size, **hp)
    if n_features < 1:
        raise UserError(f"{name}: n_features must be >= 1, got {n_features}")
    return FeatureProjection(n_features, k, build(k, input_size, **hp))
