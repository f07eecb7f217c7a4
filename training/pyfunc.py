"""The registered model: an MLflow pyfunc that turns daily OHLCV into calibrated probabilities.

`DirectionModel` (an `mlflow.pyfunc.PythonModel`) carries everything it needs as artifacts: `bundle.json`
(the run config, the tier's feature list, the train-fitted scaler, the Platt calibrator fit on the ensemble's
val predictions) and one state dict per seed. It takes a DataFrame of daily OHLCV (a `Date` column or a
date index; `Open`, `High`, `Low`, `Close`, `Volume`) and returns one row per date that has a full window
(the tier's warm-up plus `input_size` rows), the most recent date included:

    date             the day t (YYYY-MM-DD)
    probability      P(max High[t+1 .. t+horizon] >= Close_t * (1 + threshold)): the seeds' mean, calibrated
    probability_raw  the seeds' mean probability before calibration

Windows are built as in training: the tier's features of the whole input, the warm-up dropped, scaled with
the train statistics; the window for day t is the `input_size` scaled rows ending at t. Features are
causal but some (EMAs) remember their start, so a window matches training's exactly only when the input
starts where the training data did; later starts differ slightly in those features.

Bad input (missing columns, unsorted or repeated dates, too few rows for one window) raises
`datamodules.errors.DataError`. Logged by `training.promote` with `log_model` (code: the packages
`datamodules`, `models`, `training`), so `mlflow.pyfunc.load_model("models:/NAME@ALIAS")` and
`mlflow models serve` need nothing else.
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from datamodules import sources, tiers
from datamodules.errors import DataError
from datamodules.windows import WindowDataset
from models.calibration import Calibrator
from training.config import RunConfig

MARKER = "direction_research"  # key of the model's metadata: what `predict` checks a model by
ARTIFACT = "model"  # the model's name within its run
PACKAGES = ("datamodules", "models", "training")  # the code the model carries (hpo is not needed)
OUTPUT = ("date", "probability", "probability_raw")
BATCH = 1024
ENTRY = "import mlflow\n\nfrom training.pyfunc import DirectionModel\n\nmlflow.models.set_model(DirectionModel())\n"
REQUIREMENTS = ("torch", "pytorch-lightning", "torchmetrics", "neuralforecast", "mlflow", "pandas", "numpy",
                "pyarrow", "ta-lib", "scikit-learn", "matplotlib")


def signature() -> ModelSignature:
    inputs = [ColSpec("datetime", "Date", required=False),  # or the frame's index
              *(ColSpec("double", name) for name in sources.OHLCV)]
    outputs = [ColSpec("string", "date"), ColSpec("double", "probability"), ColSpec("double", "probability_raw")]
    return ModelSignature(Schema(inputs), Schema(outputs))


def ohlcv(frame: pd.DataFrame, source: str = "input") -> pd.DataFrame:
    """Validated OHLCV indexed by date: dates must already be in increasing order and unique (a model is
    asked about days as they came; a shuffled file is a mistake, not something to sort silently)."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a DataFrame of daily OHLCV, got {type(frame).__name__}")
    return sources.validate_ohlcv(frame, source)  # `sources.date_indexed`: the one rule for dates


class DirectionModel(mlflow.pyfunc.PythonModel):
    """Probabilities for every date with a full window; see the module docstring."""

    def load_context(self, context) -> None:
        from training.train import build_model  # the network exactly as `train` builds it

        bundle = json.loads(Path(context.artifacts["bundle"]).read_text())
        self.config = RunConfig.from_json(json.dumps(bundle["config"]))
        self.features = list(bundle["features"])
        self.mean = np.asarray(bundle["scaler"]["mean"], dtype=np.float64)
        self.std = np.asarray(bundle["scaler"]["std"], dtype=np.float64)
        self.calibrator = Calibrator(**bundle["calibrator"])
        self.networks = []
        for k in range(bundle["seeds"]):
            net = build_model(self.config, len(self.features))
            state = torch.load(context.artifacts[f"seed_{k}"], map_location="cpu", weights_only=True)
            net.load_state_dict(state)
            self.networks.append(net.eval())

    def windows(self, frame: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """The dates that have a full window and the scaled features [N, F] that the windows read."""
        data = ohlcv(frame)
        cfg = self.config.data
        built = tiers.build_tier(data, cfg.tier, save=False).features
        if list(built.columns) != self.features:
            raise DataError(f"tier {cfg.tier} builds other features than the model was trained on "
                            f"(feature definitions changed since); retrain or promote again")
        rows, warmup = tiers.drop_warmup(built)
        if len(rows) < cfg.input_size:
            raise DataError(f"too few rows for one window: {len(data)} rows leave {len(rows)} after tier "
                            f"{cfg.tier}'s warm-up ({warmup}); the model needs {cfg.input_size} (its input size), "
                            f"i.e. at least {warmup + cfg.input_size} rows")
        x = ((rows.to_numpy(dtype=np.float64) - self.mean) / self.std).astype(np.float32)
        return rows.index, x

    @torch.no_grad()
    def raw_probabilities(self, x: np.ndarray) -> np.ndarray:
        """The seeds' mean probability for the windows ending at rows L-1 .. N-1 of the scaled features."""
        length = self.config.data.input_size
        dataset = WindowDataset(x, np.zeros(len(x), np.float32), np.arange(length - 1, len(x)), length)
        probs = []
        for net in self.networks:
            out = [torch.sigmoid(net(xb).float()).reshape(-1) for xb, _ in dataset.batches(BATCH)]
            probs.append(torch.cat(out).numpy().astype(np.float64))
        return np.mean(probs, axis=0)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        dates, x = self.windows(model_input)
        raw = self.raw_probabilities(x)
        return pd.DataFrame({"date": dates[self.config.data.input_size - 1:].strftime("%Y-%m-%d"),
                             "probability": self.calibrator.transform(raw), "probability_raw": raw})


def requirements() -> list[str]:
    """The installed versions of what the model imports (pinned; torch without its local build suffix)."""
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def log(*, config: RunConfig, features: list[str], scaler, calibrator: Calibrator, states: list[dict],
        example: pd.DataFrame, info: dict[str, object], registered_name: str | None = None):
    """Log the model into the active run (and register it as a new version of `registered_name` when given);
    returns `mlflow.models.model.ModelInfo`."""
    code = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="direction-model-") as tmp:
        bundle = {"config": json.loads(config.to_json()), "features": features, "seeds": len(states),
                  "scaler": {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
                  "calibrator": {"a": calibrator.a, "b": calibrator.b}}
        artifacts = {"bundle": str(Path(tmp) / "bundle.json")}
        Path(artifacts["bundle"]).write_text(json.dumps(bundle, indent=1))
        for k, state in enumerate(states):
            artifacts[f"seed_{k}"] = str(Path(tmp) / f"seed_{k}.pt")
            torch.save(state, artifacts[f"seed_{k}"])
        entry = Path(tmp) / "direction_model.py"  # models from code: the class by name, nothing pickled
        entry.write_text(ENTRY)
        return mlflow.pyfunc.log_model(
            name=ARTIFACT, python_model=str(entry), artifacts=artifacts,
            code_paths=[str(code / p) for p in PACKAGES], signature=signature(), input_example=example,
            pip_requirements=requirements(), registered_model_name=registered_name,
            metadata={MARKER: {k: v if isinstance(v, int | float | str) else str(v) for k, v in info.items()}},
        )
