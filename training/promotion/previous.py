"""The comparison with the version that held the alias before this promotion: scored by its own pyfunc on
this promotion's test samples, beside the new ensemble. A report, never a gate."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from conventions.errors import UserError
from datamodules import sources
from datamodules.prepared import Prepared, Seen
from models.intervals import Setting
from training.config import RunConfig
from training.promotion.heldout import data_mismatch, held_out_from
from training.registry import resolve_config


def compare(previous: ModelVersion, cfg: RunConfig, prepared: Prepared,
            new_probs: np.ndarray) -> tuple[str, dict[str, float]]:
    """The line for people and the metrics for the promotion run (none when not compared): AUROCs and the
    paired interval of new minus previous, when this test split is held out from that version's data too."""
    label = f"previous holder of the alias: version {previous.version}"
    seen = Seen.from_tags(previous.tags)
    try:
        overlap = data_mismatch(seen, prepared) or held_out_from(
            seen, resolve_config(f"models:/{previous.name}/{previous.version}"), prepared)
    except UserError as err:
        overlap = f"its config cannot be read ({err})"
    if overlap:
        return f"{label} not compared: {overlap}", {}
    try:
        model = mlflow.pyfunc.load_model(f"models:/{previous.name}/{previous.version}")
        frame = sources.load_ohlcv(cfg.data.path).reset_index().rename(columns={"date": "Date"})
        out = model.predict(frame)
        scores = pd.Series(out["probability_raw"].to_numpy(), index=out["date"].astype(str))
    except Exception as err:  # any model may hold the alias; the comparison is a report, not a gate
        return f"{label} could not be scored on this test split ({type(err).__name__}: {err})", {}
    dates = prepared.dates("test").strftime("%Y-%m-%d")
    old = scores.reindex(dates).to_numpy(dtype=np.float64)
    keep = np.isfinite(old)
    if keep.sum() < 2:
        return f"{label} scores none of this promotion's test dates", {}
    y = prepared.labels("test")[keep]
    iv = Setting(cfg.data.horizon, prepared.labels("train"), cfg.train.seed).intervals(
        y, {"new": new_probs[keep], "previous": old[keep]})
    low, high = iv.diff["new", "previous"]
    extra = {"previous/test/auroc": iv.point["previous"], "test/auroc_vs_previous_ci_low": low,
             "test/auroc_vs_previous_ci_high": high}
    return (f"{label}: on the same {int(keep.sum())} test samples test/auroc {iv.point['previous']:.4f} "
            f"[{iv.ci['previous'][0]:.4f}, {iv.ci['previous'][1]:.4f}] vs the new version's "
            f"{iv.point['new']:.4f}; "
            f"new minus previous [{low:+.4f}, {high:+.4f}]"), extra
