"""One config object from the command line to MLflow params to the registry and back.

`RunConfig` composes the sections each layer owns: `data` (`datamodules.config.DataConfig`), `model`
(`models.config.ModelConfig`) and `train` (`TrainConfig`, here: how a network is fitted).

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

import torch

from conventions.errors import UserError
from datamodules.config import DataConfig
from models.budgets import count_params
from models.config import ModelConfig
from models.losses import make_loss
from models.registry import default_config


class ConfigError(UserError):
    """A config value or source that cannot be used; the CLI prints it as one line."""


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
MATMUL_PRECISIONS = ("highest", "high")


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "focal"  # focal | bce
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25  # weight of the positive class (Lin et al. 2017 defaults)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    max_epochs: int = 30
    max_steps: int = -1  # optimizer steps (of `accumulate_grad_batches` batches each); -1: no step limit
    accumulate_grad_batches: int = 1  # batches whose gradients one optimizer step sums
    patience: int = 5  # early stopping on val/auroc, in epochs
    seed: int = 42
    accelerator: str = field(default="auto", metadata={"free": "the hardware"})  # auto | cpu | gpu | cuda | mps
    # Lightning's Trainer(precision=...): 32-true | bf16-mixed (autocast to bfloat16; CPU or a GPU with
    # bf16) | 16-mixed (float16 with a gradient scaler; a GPU only). Loss and metrics stay in float32.
    precision: str = field(default="32-true", metadata={"free": "speed over bit-exactness on the hardware"})
    # torch.set_float32_matmul_precision for the run's float32 matmuls: highest (bit-exact float32) | high
    # (TF32 on GPUs that have it: faster, about 10 mantissa bits)
    matmul_precision: str = field(default="highest", metadata={"free": "speed over bit-exactness on the "
                                                                        "hardware"})

    def check(self) -> TrainConfig:
        """Raise `ConfigError` naming the first unusable setting (an accelerator this machine lacks
        included); return self."""
        for name, low in (("max_epochs", 1), ("patience", 1), ("accumulate_grad_batches", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"train.{name} must be >= {low}, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**31:  # numpy and Optuna take [0, 2**32); seeds + offsets (promotion's K seeds) too
            raise ConfigError(f"train.seed must be in [0, 2**31), got {self.seed}")
        if self.max_steps != -1 and self.max_steps < 1:
            raise ConfigError(f"train.max_steps must be >= 1 (or -1: no limit), got {self.max_steps}")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError(f"train.lr must be > 0 and weight_decay, grad_clip >= 0; got {self.lr}, "
                              f"{self.weight_decay}, {self.grad_clip}")
        if self.loss not in ("focal", "bce"):
            raise ConfigError(f"unknown loss {self.loss!r}; known: bce, focal")
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(f"unknown accelerator {self.accelerator!r}; known: {', '.join(ACCELERATORS)}")
        if self.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--accelerator {self.accelerator}: this machine has no CUDA GPU; use cpu or auto")
        if self.accelerator == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("--accelerator mps: MPS is not available on this machine; use cpu or auto")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise ConfigError(f"unknown train.matmul_precision {self.matmul_precision!r}; known: "
                              f"{', '.join(MATMUL_PRECISIONS)}")
        auto = self.accelerator == "auto"
        cuda = self.accelerator in ("gpu", "cuda") or (auto and torch.cuda.is_available())
        gpu = cuda or self.accelerator == "mps" or (auto and torch.backends.mps.is_available())
        if self.precision == "16-mixed" and not gpu:
            raise ConfigError(f"--precision 16-mixed needs a GPU (float16 mixed precision is not supported on "
                              f"the CPU; accelerator {self.accelerator}); use bf16-mixed or 32-true")
        if self.precision == "bf16-mixed" and cuda and not torch.cuda.is_bf16_supported():
            raise ConfigError("--precision bf16-mixed: this GPU has no bfloat16 support; use 16-mixed or 32-true")
        return self


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def for_model(cls, name: str) -> RunConfig:
        """Default config with the backbone's own declared defaults."""
        return cls(model=default_config(name))

    def check(self) -> RunConfig:
        """Every user mistake in the config, before anything is built or written: data settings, training
        settings, and a model shape the backbone cannot take. Returns self."""
        self.data.check()
        self.train.check()
        make_loss(self.train.loss, self.train.focal_gamma, self.train.focal_alpha)
        count_params(self.model.name, 1, self.data.input_size, **self.model.hp)
        return self

    # -- flat params -------------------------------------------------------------------------------
    def to_params(self) -> dict[str, str]:
        return {
            f"{section}.{name}": _format(value)
            for section, values in asdict(self).items()
            for name, value in values.items()
        }

    @classmethod
    def from_params(cls, params: dict[str, str]) -> RunConfig:
        """Rebuild from flat params; keys outside the config (`params.count`, `ci.method`, the parameters of
        `mlflow run` such as `data`) are ignored."""
        return cls().override({k: v for k, v in params.items() if "." in k and k.split(".", 1)[0] in _SECTIONS})

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
        """A config from its JSON (`to_json`): {section: {field: value}}; `ConfigError` for anything else."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"not a JSON config: {err}") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ConfigError("not a config: expected {section: {field: value}} as written to config.json")
        return cls().override({f"{s}.{k}": v for s, vals in raw.items() for k, v in vals.items()})

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            return cls.from_json(path.read_text())
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a JSON config: {err}") from None
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# the flat keys of the settings that do not change the experiment (field metadata `free`: why): the workers of
# one study may differ in them, and an ablation cell's key leaves them out
FREE = tuple(f"{s}.{f.name}" for s, cls in _SECTIONS.items() for f in dataclasses.fields(cls) if "free" in f.metadata)


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
