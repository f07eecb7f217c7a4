"""The registered model: an MLflow pyfunc that turns daily OHLCV into calibrated probabilities.

`DirectionModel` (an `mlflow.pyfunc.PythonModel`) carries everything it needs as artifacts: `bundle.json`
(the run config, the tier's feature list, the train-fitted scaler, the Platt calibrator fit on the ensemble's
val predictions) and one state dict per seed. It takes a DataFrame of daily OHLCV (a `Date` column or a
date index; `Open`, `High`, `Low`, `Close`, `Volume`) and returns one row per date that has a full window
(the tier's warm-up plus `input_size` rows), the most recent date included:

    date                  the day t (YYYY-MM-DD)
    probability           P(max High[t+1 .. t+horizon] >= Close_t * (1 + threshold)): the seeds' mean, calibrated
    probability_raw       the seeds' mean probability before calibration
    outside_train_range   how many of the model's features lie outside their train range [min, max] on day t

It takes what a CSV or JSON holds: dates as text or datetimes (a `Date` column or the index), prices and
volume as integers, floats or numeric text; other columns are ignored. The signature declares the columns
with type `any` (MLflow's enforcement would refuse text dates for a datetime column and int64 for a double
one) and `predict` converts them, as `sources.validate_ohlcv` does for a file.

The output's `attrs["shift"]` (`training.shift.Shift.to_dict()`) compares the input's features with the
train split's (population stability per feature, the share outside the train range, the label rate where
the input's labels are known) and holds a `warning` line when the model is used outside what it was trained
on (None otherwise); models registered before the train reference was kept have no `shift`.

Windows are built as in training: the tier's features of the whole input, the warm-up dropped, scaled with
the train statistics; the window for day t is the `input_size` scaled rows ending at t. Features are
causal but some (EMAs) remember their start, so a window matches training's exactly only when the input
starts where the training data did; later starts differ slightly in those features.

Bad input (missing columns, unsorted or repeated dates, too few rows for one window) raises `InputError`,
an `MlflowException` with error code INVALID_PARAMETER_VALUE whose message is the project's one line:
MLflow's scoring server answers it with HTTP 400 and that line as the response's `message`. Logged by
`training.promote` with `log_model` (code: the packages `conventions`, `datamodules`, `models`,
`training`) under the name `artifact_name` (MODEL-TIER-LINPUT_SIZE), so
`mlflow.pyfunc.load_model("models:/NAME@ALIAS")` and `mlflow models serve` need nothing else.
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
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from conventions.errors import UserError
from datamodules import sources, tiers
from datamodules.errors import DataError
from datamodules.labels import make_labels
from datamodules.windows import WindowDataset
from models.calibration import Calibrator
from training import shift
from training.config import RunConfig

MARKER = "direction_research"  # key of the model's metadata: what `predict` checks a model by
PACKAGES = ("conventions", "datamodules", "models", "training")  # the code the model carries (hpo is not needed)
OUTPUT = ("date", "probability", "probability_raw", "outside_train_range")
BATCH = 1024
ENTRY = "import mlflow\n\nfrom training.pyfunc import DirectionModel\n\nmlflow.models.set_model(DirectionModel())\n"
REQUIREMENTS = ("torch", "pytorch-lightning", "torchmetrics", "neuralforecast", "mlflow", "pandas", "numpy",
                "pyarrow", "ta-lib", "scikit-learn", "matplotlib")


def signature() -> ModelSignature:
    inputs = [ColSpec(AnyType(), "Date", required=False),  # or the frame's index
              *(ColSpec(AnyType(), name) for name in sources.OHLCV)]
    outputs = [ColSpec("string", "date"), ColSpec("double", "probability"), ColSpec("double", "probability_raw"),
               ColSpec("long", "outside_train_range")]
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
        self.reference = shift.Reference.from_dict(bundle["reference"]) if "reference" in bundle else None
        self.networks = []
        for k in range(bundle["seeds"]):
            net = build_model(self.config, len(self.features))
            state = torch.load(context.artifacts[f"seed_{k}"], map_location="cpu", weights_only=True)
            net.load_state_dict(state)
            self.networks.append(net.eval())

    def windows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The validated OHLCV and its unscaled features past the warm-up [N, F] (at least one window)."""
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
        return data, rows

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Unscaled feature rows [N, F] scaled with the train statistics, as the networks read them."""
        return ((values - self.mean) / self.std).astype(np.float32)

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
        try:
            data, rows = self.windows(model_input)
        except UserError as err:
            raise InputError(" ".join(str(err).split())) from None
        values = rows.to_numpy(dtype=np.float64)
        raw = self.raw_probabilities(self.scale(values))
        scored = slice(self.config.data.input_size - 1, None)
        out = pd.DataFrame({"date": rows.index[scored].strftime("%Y-%m-%d"),
                            "probability": self.calibrator.transform(raw), "probability_raw": raw,
                            "outside_train_range": self.outside(values)[scored]})
        if self.reference is not None:
            out.attrs["shift"] = self.shift(data, values).to_dict()
        return out

    def outside(self, values: np.ndarray) -> np.ndarray:
        """Per row: how many features lie outside their train range (0 without a train reference)."""
        if self.reference is None:
            return np.zeros(len(values), np.int64)
        low, high = np.asarray(self.reference.low), np.asarray(self.reference.high)
        return ((values < low) | (values > high)).sum(axis=1).astype(np.int64)

    def shift(self, data: pd.DataFrame, values: np.ndarray) -> shift.Shift:
        """The input's features (past the warm-up) and its known labels against the train reference."""
        cfg = self.config.data
        labels = None
        if len(data) > cfg.horizon:
            y = make_labels(data["High"].to_numpy(), data["Close"].to_numpy(), cfg.horizon, cfg.threshold).y
            labels = y[len(data) - len(values):]
        return shift.compare(self.reference, values, labels)


class InputError(MlflowException):
    """Input the model cannot use, as MLflow's INVALID_PARAMETER_VALUE (HTTP 400 from the scoring server).
    Its message stays the one line it was made with: the scoring server rewrites a failed prediction's
    message to start with the whole input frame, which would bury the reason."""

    def __init__(self, line: str):
        self._line = line
        super().__init__(line, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        """Ignored: see the class docstring."""


def artifact_name(config: RunConfig) -> str:
    """The logged model's name within its run: what it is (e.g. itransformer-a20-L80)."""
    return f"{config.model.name}-{config.data.tier}-L{config.data.input_size}"


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
        reference: shift.Reference, example: pd.DataFrame, info: dict[str, object],
        registered_name: str | None = None):
    """Log the model into the active run (and register it as a new version of `registered_name` when given);
    returns `mlflow.models.model.ModelInfo`. `reference`: the train split's features, for `shift`."""
    code = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="direction-model-") as tmp:
        bundle = {"config": json.loads(config.to_json()), "features": features, "seeds": len(states),
                  "scaler": {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
                  "calibrator": {"a": calibrator.a, "b": calibrator.b}, "reference": reference.to_dict()}
        artifacts = {"bundle": str(Path(tmp) / "bundle.json")}
        Path(artifacts["bundle"]).write_text(json.dumps(bundle, indent=1))
        for k, state in enumerate(states):
            artifacts[f"seed_{k}"] = str(Path(tmp) / f"seed_{k}.pt")
            torch.save(state, artifacts[f"seed_{k}"])
        entry = Path(tmp) / "direction_model.py"  # models from code: the class by name, nothing pickled
        entry.write_text(ENTRY)
        return mlflow.pyfunc.log_model(
            name=artifact_name(config), python_model=str(entry), artifacts=artifacts,
            code_paths=[str(code / p) for p in PACKAGES], signature=signature(), input_example=example,
            pip_requirements=requirements(), registered_model_name=registered_name,
            metadata={MARKER: {k: v if isinstance(v, int | float | str) else str(v) for k, v in info.items()}},
        )
