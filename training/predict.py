"""`python -m training.predict --model-uri models:/NAME@ALIAS [--data OHLCV.csv] [--out preds.csv]`: a promoted
model's probabilities for every date of the data that has a full window, the most recent one included.

`--model-uri`: any `models:/NAME@ALIAS`, `models:/NAME/VERSION` or `runs:/RUN_ID/MODEL-TIER-LINPUT_SIZE` URI
of a model registered by `python -m training.promote`. `--data`: a CSV or parquet of daily OHLCV (Date column
or index, any column case, dates increasing and unique; default: the embedded S&P 500). Output columns:
`date`, `probability` (calibrated), `probability_raw` (the seeds' mean before calibration),
`outside_train_range` (how many features lie outside their train range that day) and `label` (1 or 0 where
the next `horizon` days are already in the data, empty where they are not yet), to `--out` (.csv or
.parquet) or as a table on stdout.

Beside it, on stderr: a `warning:` line when the data lie outside what the model was trained on
(`training.shift`), and a line of the shift figures; where labels are known for the scored dates, their
AUROC (with its block-bootstrap interval) and Brier beside the figures the model had on its test split at
promotion.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from conventions.cli import Parser, run_main
from conventions.errors import UserError
from datamodules import sources
from datamodules.labels import make_labels

OUT_SUFFIXES = (".csv", ".parquet", ".pq")


def build_parser() -> Parser:
    parser = Parser(prog="python -m training.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-uri", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/ID/model")
    parser.add_argument("--data", default=None, help="CSV or parquet of daily OHLCV (default: the embedded S&P 500)")
    parser.add_argument("--out", default=None, help="write .csv or .parquet here (default: a table on stdout)")
    return parser


def model_info(uri: str) -> dict[str, object]:
    """The model's `direction_research` metadata; `UserError` when the URI names no model or one not made by
    `python -m training.promote`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from training.pyfunc import MARKER

    if not uri.strip():
        raise UserError("--model-uri is empty: give models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/model")
    from training.tracking import sqlite_file

    store = mlflow.get_tracking_uri()
    if uri.startswith(("models:/", "runs:/")) and (path := sqlite_file(store)) is not None and not path.is_file():
        raise UserError(f"{uri} is looked up in the MLflow tracking store {store}, which does not exist (nothing "
                        "was created); set MLFLOW_TRACKING_URI to the store the model was registered in")
    try:
        info = mlflow.models.get_model_info(uri)
    except (MlflowException, OSError, ImportError) as err:  # ImportError: a store whose client is not installed
        text = str(getattr(err, "message", "") or err).strip()
        raise UserError(f"model {uri}: {text.splitlines()[0] if text else type(err).__name__}") from None
    meta = (info.metadata or {}).get(MARKER)
    if not isinstance(meta, dict) or "python_function" not in info.flavors:
        raise UserError(f"{uri} is not a direction model of this project (no {MARKER!r} metadata); register one "
                        "with `python -m training.promote`")
    return meta


def load(uri: str):
    import mlflow

    return mlflow.pyfunc.load_model(uri)


def predict_frame(model, meta: dict[str, object], data: pd.DataFrame) -> pd.DataFrame:
    """The model's output on validated OHLCV (`sources.validate_ohlcv`'s frame), with the labels known so far
    (nullable integers: empty where the horizon has not passed yet); the pyfunc's `attrs` kept."""
    from mlflow.exceptions import MlflowException

    try:
        out = model.predict(data.reset_index().rename(columns={"date": "Date"}))
    except MlflowException as err:  # the pyfunc's InputError, or MLflow's schema enforcement
        if err.error_code != "INVALID_PARAMETER_VALUE":
            raise
        raise UserError(err.message.strip().splitlines()[0]) from None
    horizon, threshold = int(meta["horizon"]), float(meta["threshold"])
    labels = pd.Series(pd.NA, index=data.index.strftime("%Y-%m-%d"), dtype="Int8")
    if len(data) > horizon:
        y = make_labels(data["High"].to_numpy(), data["Close"].to_numpy(), horizon, threshold).y
        labels.iloc[:len(y)] = y
    attrs = dict(out.attrs)
    out = out.assign(label=labels.reindex(out["date"]).array)
    out.attrs = attrs
    return out


def report(table: pd.DataFrame, meta: dict[str, object]) -> list[str]:
    """The lines printed beside the table: the shift warning and figures, and the scored dates' AUROC and
    Brier where their labels are known, beside the model's test figures at promotion."""
    from models.intervals import bootstrap_auroc
    from training import shift

    lines = []
    if "shift" in table.attrs:
        found = shift.Shift.from_dict(table.attrs["shift"])
        lines += [f"warning: {found.warning}"] * (found.warning is not None) + [found.summary()]
    known = table.dropna(subset=["label"])
    y = known["label"].to_numpy(dtype=np.int8)
    if len(known) > 1 and 0 < y.sum() < len(y):
        p = known["probability"].to_numpy(dtype=np.float64)
        iv = bootstrap_auroc(y, {"model": p}, horizon=int(meta["horizon"]))
        low, high = iv.ci["model"]
        at_promotion = (f"; at promotion on its test split: AUROC {float(meta['test_auroc']):.4f} "
                        f"[{float(meta['test_auroc_ci_low']):.4f}, {float(meta['test_auroc_ci_high']):.4f}], Brier "
                        f"{float(meta['test_brier_val_calibrated']):.4f}" if "test_auroc" in meta else "")
        seen = int((known["date"] < meta["test_start"]).sum()) if "test_start" in meta else 0
        in_sample = (f"; {seen} of these dates precede the model's test split (from {meta['test_start']}): on "
                     "the data it was promoted on they trained and chose it, and the figure is not held out"
                     if seen else "")
        lines.append(f"on the {len(known)} scored dates whose labels are known: AUROC {iv.point['model']:.4f} "
                     f"[95% CI {low:.4f}, {high:.4f}], Brier {np.mean((p - y) ** 2):.4f} (a constant at the "
                     f"label rate: {y.mean() * (1 - y.mean()):.4f}){at_promotion}{in_sample}")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _quiet_mlflow()
    out = Path(args.out) if args.out else None  # "" (MLproject's "not given") as absent
    if out is not None:
        if out.suffix.lower() not in OUT_SUFFIXES:
            raise UserError(f"--out {out}: unsupported format {out.suffix or '(none)'!r}; use .csv or .parquet")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: directory {out.parent} does not exist")
    meta = model_info(args.model_uri)
    from training.pyfunc import ohlcv

    path = Path(args.data) if args.data else sources.embedded_path()
    data = ohlcv(sources.read_table(path), path)
    table = predict_frame(load(args.model_uri), meta, data)
    for line in report(table, meta):
        print(line, file=sys.stderr)
    if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run -e predict`: its run says what it did
        from training import tracking

        tracking.log_batch(os.environ["MLFLOW_RUN_ID"], tags={
            "kind": "predict", "model_uri": args.model_uri, "data": str(path), "out": str(out or "stdout"),
            "dates": f"{table['date'].iloc[0]} .. {table['date'].iloc[-1]}"})
    if out is None:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.to_string(index=False))
        return
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False)
    else:
        table.to_parquet(out, index=False)
    last = table.iloc[-1]
    missing = int(table["label"].isna().sum())
    print(f"{len(table)} dates ({table['date'].iloc[0]} .. {last['date']}) written to {out}; {last['date']}: "
          f"probability {last['probability']:.4f} of rising >= {float(meta['threshold']):g} within "
          f"{meta['horizon']} day(s) ({meta['model']} {meta['tier']} L{meta['input_size']}, "
          f"{meta['seeds']} seeds); `label` is empty on the last {missing} date(s), whose next {meta['horizon']} "
          "day(s) are not in the data yet")


def _quiet_mlflow() -> None:
    """A prediction's stderr carries errors only: no download bars, no MLflow notices."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)


if __name__ == "__main__":
    run_main(main)

