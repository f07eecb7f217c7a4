"""Where a best config comes from: `--use-best-from models:/NAME@ALIAS | models:/NAME/VERSION |
runs:/RUN_ID | path/to/config.json`. A run's params are its flattened `RunConfig` (lossless); a model version
registered by `python -m training.promote` points at its promotion run, which holds the promoted config as
params too. Also the checks of registry names and aliases that `promote` makes before it writes anything."""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.config import ConfigError, RunConfig


def resolve_config(source: str) -> RunConfig:
    if not _is_uri(source):
        return RunConfig.load(Path(source))
    return RunConfig.from_params(source_run(source)[1])


def source_run(source: str) -> tuple[str, dict[str, str]]:
    """The run a `runs:/` or `models:/` source names and its params (`ConfigError` when it holds no config)."""
    if source.startswith("runs:/"):
        run_id = source.removeprefix("runs:/").strip("/").split("/")[0]
    elif source.startswith("models:/"):
        run_id = model_version(source).run_id
        if not run_id:
            raise ConfigError(f"{source}: the model version was registered without a run, so it holds no run config")
    else:
        raise ConfigError(f"cannot read a config from {source!r}: use models:/NAME@ALIAS, "
                          "models:/NAME/VERSION, runs:/RUN_ID or a path to a config.json")
    try:
        params = MlflowClient().get_run(run_id).data.params
    except MlflowException as err:
        raise ConfigError(f"{source}: {_first_line(err)}") from None
    if "model.name" not in params:
        raise ConfigError(f"{source}: run {run_id} holds no run config (no model.name param)")
    return run_id, params


def _is_uri(source: str) -> bool:
    return "://" in source or source.startswith(("runs:", "models:"))


def model_version(source: str):
    """The `ModelVersion` of `models:/NAME@ALIAS` or `models:/NAME/VERSION` (`ConfigError` when absent)."""
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
        raise ConfigError(f"{source}: {_first_line(err)}") from None


def alias_holder(name: str, alias: str):
    """The version of registered model `name` that holds `alias`, or None (also when `name` does not exist)."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def check_model_name(name: str) -> str:
    """A registered model name MLflow accepts, else `ConfigError`."""
    from mlflow.utils.validation import _validate_model_name

    try:
        _validate_model_name(name)
    except MlflowException as err:
        raise ConfigError(f"--name {name!r} is not a valid MLflow model name: {_first_line(err)}") from None
    return name


def check_alias(alias: str) -> str:
    """A model alias MLflow accepts (not `latest`, not `vN`), else `ConfigError`."""
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as err:
        raise ConfigError(f"--alias {alias!r}: {_first_line(err)}") from None
    return alias


def _first_line(err: MlflowException) -> str:
    text = str(err.message).strip()
    return text.splitlines()[0] if text else type(err).__name__
