"""The registry step, the promotion's last: the ensemble logged as a pyfunc into the promotion run and
registered as a new version of the model with its tags and description, the alias moved to it; on any
failure the new version (and a registered model created for it) is deleted again."""

from __future__ import annotations

import math
from collections.abc import Callable

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conventions.cli import mask
from datamodules import sources
from datamodules.prepared import Prepared
from training import pyfunc, shift, tracking
from training.config import RunConfig
from training.promotion.ensemble import Ensemble
from training.promotion.source import SOURCE, STUDY, TRIAL, Source

INFO_METRICS = ("test/auroc", "test/auroc_ci_low", "test/auroc_ci_high", "test/brier_val_calibrated")
TAG_METRICS = ("best/val/auroc", "best/val/auroc_ci_low", "best/val/auroc_ci_high", "test/auroc",
               "test/auroc_ci_low", "test/auroc_ci_high", "test/auroc_vs_best_baseline_ci_low",
               "test/auroc_vs_best_baseline_ci_high")


def register(*, name: str, alias: str, cfg: RunConfig, prepared: Prepared, ensemble: Ensemble, source: Source,
             run_id: str, describe: Callable[[str], str], development: dict[str, str]) -> str:
    """Log the pyfunc into the active (promotion) run `run_id`, register it as a new version of `name`, move
    the alias; `prepared`: the data the ensemble trained on (the last fold's view: its scaler and train rows go
    into the model); `describe(version)`: its Markdown description; `development`: the version's tags of the
    config's development record. Returns the version."""
    m, h = ensemble.metrics, cfg.data.horizon
    info = {"promotion_run_id": run_id, "model": cfg.model.name, "tier": cfg.data.tier,
            "input_size": cfg.data.input_size, "horizon": h, "threshold": cfg.data.threshold,
            "seeds": len(ensemble.seeds), "test_start": str(prepared.dates("test")[0].date()),
            **{key.replace("/", "_"): m[key] for key in INFO_METRICS}}
    tags = {STUDY: source.study or "", TRIAL: source.trial or "", SOURCE: source.uri,
            "promotion_run_id": run_id, "model": cfg.model.name, "tier": cfg.data.tier,
            "input_size": cfg.data.input_size, "horizon": h, "threshold": cfg.data.threshold,
            "data_fingerprint": prepared.data_fingerprint, "fingerprint": prepared.fingerprint,
            **(source.seen or prepared.seen).tags(),
            "seeds": len(ensemble.seeds), "best_baseline": ensemble.ev.best_baseline,
            "best_baseline_test_auroc": tag_value(m["baseline/best/test/auroc"]),
            **{key.removeprefix("best/").replace("/", "_"): tag_value(m[key]) for key in TAG_METRICS}, **development}
    client = MlflowClient()
    existed = _registered_model_exists(name)
    raw = sources.load_ohlcv(cfg.data.path)
    example = raw.iloc[-(prepared.warmup + cfg.data.input_size + 4):].reset_index().rename(
        columns={"date": "Date"})
    states = [{k: v.detach().cpu() for k, v in r.model.state_dict().items()} for r in ensemble.members]
    train = prepared.split == "train"
    reference = shift.reference(prepared.features[train], list(prepared.feature_names), prepared.y[train])
    logged = pyfunc.log(config=cfg, features=list(prepared.feature_names), scaler=prepared.scaler,
                        calibrator=ensemble.calibrator, states=states, reference=reference, example=example,
                        info=info)
    version = None
    try:
        version = str(mlflow.register_model(logged.model_uri, name,
                                            tags={k: str(v) for k, v in tags.items()}).version)
        client.update_model_version(name, version, description=describe(version))
        client.set_registered_model_alias(name, alias, version)
        return version
    except BaseException:
        if version is not None:
            client.delete_model_version(name, version)
        if (not existed and _registered_model_exists(name)
                and not client.search_model_versions(f"name = '{name}'")):
            client.delete_registered_model(name)
        raise


def tag_value(value: float) -> str:
    """A metric as a version tag."""
    return "nan" if not math.isfinite(value) else f"{value:.6f}"


def check_may_register(name: str) -> None:
    """Before anything is trained: a `tracking.TrackingRefused` when this user may not add a version to the
    registered model `name` that exists (on a basic-auth server that takes EDIT on it, as moving its alias
    does; a new name is created, and owned, by whoever registers it). The check is a write that changes
    nothing, as the experiment's is (`tracking.experiment_id`): the model's description set to itself."""
    client = MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return
        raise
    try:
        client.update_registered_model(name, description=model.description)
    except MlflowException as err:
        if err.error_code != "PERMISSION_DENIED":
            raise
        raise tracking.TrackingRefused(
            f"user {tracking.user()} may not add a version to registered model {name!r} on the MLflow tracking "
            f"server {mask(mlflow.get_tracking_uri())}: ask its admin for EDIT permission on it, or promote under "
            "another --name") from None


def _registered_model_exists(name: str) -> bool:
    try:
        MlflowClient().get_registered_model(name)
        return True
    except MlflowException:
        return False
