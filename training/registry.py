"""Where a best config comes from: `--use-best-from models:/NAME@ALIAS | models:/NAME/VERSION |
runs:/RUN_ID | path/to/config.json`. A run's params are its flattened `RunConfig` (lossless)."""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.config import ConfigError, RunConfig


def resolve_config(source: str) -> RunConfig:
    if source.startswith("runs:/"):
        return _run_config(source.removeprefix("runs:/").strip("/").split("/")[0], source)
    if source.startswith("models:/"):
        return _run_config(_model_version(source).run_id, source)
    if "://" in source or source.startswith(("runs:", "models:")):
        raise ConfigError(f"cannot read a config from {source!r}: use models:/NAME@ALIAS, "
                          "models:/NAME/VERSION, runs:/RUN_ID or a path to a config.json")
    return RunConfig.load(Path(source))


def _model_version(source: str):
    ref = source.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, version = ref.partition("/")
        if not version.isdigit():
            raise ConfigError(f"{source!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise ConfigError(f"{source}: {err.message.splitlines()[0]}") from None


def _run_config(run_id: str, source: str) -> RunConfig:
    try:
        params = MlflowClient().get_run(run_id).data.params
    except MlflowException as err:
        raise ConfigError(f"{source}: {err.message.splitlines()[0]}") from None
    if "model.name" not in params:
        raise ConfigError(f"{source}: run {run_id} holds no run config (no model.name param)")
    return RunConfig.from_params(params)
