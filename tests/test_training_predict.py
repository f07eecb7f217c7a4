"""`python -m training.predict` and `mlflow models serve` on a promoted tiny model: the same numbers as the
pyfunc, labels where the future is known, one-line errors for bad input. Real MLflow (temp sqlite store),
a real server on 127.0.0.1."""

import contextlib
import io
import json
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from datamodules import sources
from datamodules.labels import make_labels
from tests.conftest import shared, tiny, use_store
from tests.servers import model_server
from training import predict, promote
from training.train import train

NAME = "tiny-direction"
URI = f"models:/{NAME}@champion"
L, WARMUP = 16, 59  # the tiny config's input size; tier a20's warm-up on the embedded data


@pytest.fixture(scope="module")
def promotion(module_store):
    """One tiny run promoted (2 seeds) in the module's store, read by every test that asks for `promoted`."""
    with shared(module_store):
        run = train(tiny().override({"train.max_epochs": 1}), progress=False, plots=False, log_checkpoint=False)
        with contextlib.redirect_stdout(io.StringIO()):
            run_main(promote.main, ["--run", run.run_id, "--name", NAME, "--seeds", "2", "--quiet"])
    return run


@pytest.fixture
def promoted(promotion, module_store, monkeypatch):
    use_store(monkeypatch, module_store)
    return promotion


def cli(capsys, *args):
    code = 0
    try:
        run_main(predict.main, [str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def frame(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.reset_index().rename(columns={"date": "Date"})


def test_predict_gives_the_pyfunc_numbers_and_the_known_labels(promoted, capsys, tmp_path):
    ohlcv = sources.load_ohlcv(None).iloc[-400:]
    frame(ohlcv).rename(columns=str.lower).to_csv(tmp_path / "latest.csv", index=False)  # any column case
    code, out, err = cli(capsys, "--model-uri", URI, "--data", tmp_path / "latest.csv", "--out", tmp_path / "p.csv")
    assert code == 0 and "error" not in err and "shift from the train split" in err, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["date", "probability", "probability_raw", "outside_train_range", "label"]
    assert len(table) == 400 - WARMUP - L + 1 and table["date"].iloc[-1] == str(ohlcv.index[-1].date())
    expected = mlflow.pyfunc.load_model(URI).predict(frame(ohlcv))
    np.testing.assert_allclose(table[["probability", "probability_raw"]], expected[["probability", "probability_raw"]])
    y = make_labels(ohlcv["High"].to_numpy(), ohlcv["Close"].to_numpy(), 1, 0.01).y[WARMUP + L - 1:]
    assert table["label"].isna().tolist() == [False] * (len(table) - 1) + [True]  # tomorrow is not known yet
    np.testing.assert_array_equal(table["label"].iloc[:-1].astype(int), y)
    assert "written to" in out and str(ohlcv.index[-1].date()) in out

    # runs:/ URIs and stdout
    version = MlflowClient().get_model_version_by_alias(NAME, "champion")
    uri = f"runs:/{version.run_id}/itransformer-a20-L16"  # the logged model is named after what it is
    code, out, err = cli(capsys, "--model-uri", uri, "--data", tmp_path / "latest.csv")
    assert code == 0, err
    assert out.strip().splitlines()[-1].split()[0] == str(ohlcv.index[-1].date())
    assert out.strip().splitlines()[-1].split()[-1] == "<NA>"  # the label not known yet


def test_bad_prediction_input_is_one_line(promoted, capsys, tmp_path):
    ohlcv = frame(sources.load_ohlcv(None).iloc[-300:])
    unsorted = ohlcv.copy()
    unsorted.iloc[[10, 11]] = unsorted.iloc[[11, 10]].to_numpy()
    duplicated = ohlcv.copy()
    duplicated.loc[11, "Date"] = duplicated.loc[10, "Date"]
    files = {"short.csv": ohlcv.iloc[-(WARMUP + L - 1):], "warmup.csv": ohlcv.iloc[:30],
             "novolume.csv": ohlcv.drop(columns="Volume"), "unsorted.csv": unsorted, "dup.csv": duplicated}
    for name, rows in files.items():
        rows.to_csv(tmp_path / name, index=False)
    with mlflow.start_run():  # a pyfunc model that is not one of this project's
        other = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name="other",
                                        pip_requirements=[]).model_uri
    capsys.readouterr()
    cases = [
        (["--data", "short.csv"], f"too few rows for one window: {WARMUP + L - 1} rows"),
        (["--data", "warmup.csv"], "all 30 rows are within the features' warm-up (the longest indicator window); "
                                      "give a longer history"),
        (["--data", "novolume.csv"], "missing column 'Volume'"),
        (["--data", "unsorted.csv"], "dates are not in increasing order"),
        (["--data", "dup.csv"], f"duplicate date {ohlcv.loc[10, 'Date'].date()}"),
        (["--data", "missing.csv"], "data file not found"),
        (["--data", "short.csv", "--out", "p.txt"], "unsupported format '.txt'"),
        (["--model-uri", "models:/nope@champion"], "models:/nope@champion"),
        (["--model-uri", f"models:/{NAME}/7"], f"models:/{NAME}/7"),
        (["--model-uri", "models:/other/1"], "is not a direction model of this project"),
        (["--model-uri", other], "is not a direction model of this project"),
    ]
    for args, message in cases:
        argv = ["--model-uri", URI, *[str(tmp_path / a) if a.endswith((".csv", ".txt")) else a for a in args]]
        code, out, err = cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
    assert not (tmp_path / "p.txt").exists()


def test_a_tracking_store_that_does_not_exist_is_one_line_and_not_created(capsys, tmp_path):
    store = tmp_path / "missing" / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{store}")  # conftest sets each test's own store again
    code, _, err = cli(capsys, "--model-uri", URI)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {URI} is looked up in the MLflow tracking store sqlite:///{store}, which does not exist (nothing "
        "was created); set MLFLOW_TRACKING_URI to the store the model was registered in"]
    assert not store.parent.exists()


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return model_input


def test_mlflow_models_serve_answers_with_the_pyfunc_numbers(promoted, tmp_path):
    with model_server(URI, tmp_path) as served:  # the model's own code only, no PYTHONPATH
        rows = frame(sources.load_ohlcv(None).iloc[-200:])
        body = {"dataframe_split": json.loads(rows.assign(Date=rows["Date"].dt.strftime("%Y-%m-%d"))
                                              .to_json(orient="split", index=False))}
        request = urllib.request.Request(served.url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            answered = pd.DataFrame(json.load(r)["predictions"])
    expected = mlflow.pyfunc.load_model(URI).predict(rows)
    assert answered["date"].tolist() == expected["date"].tolist() and answered["date"].iloc[-1] == "2018-12-31"
    columns = ["probability", "probability_raw"]
    np.testing.assert_allclose(answered[columns], expected[columns], rtol=1e-6)
