"""One config object from the command line to MLflow params to the registry and back.

`RunConfig.to_params()` flattens to `{"data.tier": "a20", "model.hidden_size": "64", ...}` (MLflow params
are strings) and `RunConfig.from_params()` rebuilds the identical object from them.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.registry import resolve_hp


class ConfigError(ValueError):
    """A config value or source that cannot be used; the CLI prints it as one line."""


@dataclass
class DataConfig:
    tier: str = "a20"
    path: str | None = None  # None: the embedded S&P 500 daily OHLCV shipped by `arch`
    input_size: int = 80  # context length L in trading days
    horizon: int = 1
    threshold: float = 0.01
    train_frac: float = 0.70
    val_frac: float = 0.15
    test_frac: float = 0.15
    embargo: int = 5  # rows dropped after each purge gap, on top of `horizon`
    batch_size: int = 64


@dataclass
class ModelConfig:
    """Union of the backbones' shape parameters; each backbone reads the ones it declares."""

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


@dataclass
class TrainConfig:
    loss: str = "focal"  # focal | bce
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25  # weight of the positive class (Lin et al. 2017 defaults)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    max_epochs: int = 30
    max_steps: int = -1  # -1: no step limit
    patience: int = 5  # early stopping on val/auroc, in epochs
    seed: int = 42
    accelerator: str = "auto"


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def for_model(cls, name: str) -> RunConfig:
        """Default config with the backbone's own declared defaults for its shape."""
        return cls(model=ModelConfig(**{**asdict(ModelConfig()), **resolve_hp(name), "name": name}))

    # -- flat params -------------------------------------------------------------------------------
    def to_params(self) -> dict[str, str]:
        return {
            f"{section}.{name}": _format(value)
            for section, values in asdict(self).items()
            for name, value in values.items()
        }

    @classmethod
    def from_params(cls, params: dict[str, str]) -> RunConfig:
        """Rebuild from flat params; keys outside the config (e.g. `params.count`) are ignored."""
        return cls().override({k: v for k, v in params.items() if k.split(".", 1)[0] in _SECTIONS})

    def override(self, values: dict[str, object]) -> RunConfig:
        """A copy with `{"section.field": value}` replaced; strings are parsed by the field's type."""
        sections = {name: asdict(getattr(self, name)) for name in _SECTIONS}
        for key, value in values.items():
            section, _, name = key.partition(".")
            if section not in sections or name not in sections[section]:
                raise ConfigError(f"unknown config key {key!r}; known: {', '.join(sorted(_keys()))}")
            kind = _field_types(_SECTIONS[section])[name]
            sections[section][name] = _parse(value, kind, key) if isinstance(value, str) else value
        return RunConfig(**{name: _SECTIONS[name](**vals) for name, vals in sections.items()})

    # -- json ---------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        raw = json.loads(text)
        return cls().override({f"{s}.{k}": v for s, vals in raw.items() for k, v in vals.items()})

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            return cls.from_json(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from None


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in _SECTIONS.items() for f in dataclasses.fields(cls)]


def _field_types(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _format(value: object) -> str:
    return "None" if value is None else str(value)


def _parse(text: str, kind: object, key: str) -> object:
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if text == "None":
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        if kind is bool:
            if text not in ("True", "False"):
                raise ValueError(text)
            return text == "True"
        return kind(text)
    except ValueError:
        raise ConfigError(f"{key}: cannot read {text!r} as {kind.__name__}") from None
