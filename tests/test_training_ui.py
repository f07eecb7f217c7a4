"""What a user sees, on one tiny study promoted once (module fixture, its own sqlite store): the registered
model takes a `read_csv` frame and its JSON through the pyfunc, `training.predict` and a real `mlflow models
serve` on 127.0.0.1 with the same output; REST errors carry the project's one line; a shift warning on a
series of another volatility level and none on the training data; run names and Markdown descriptions read
back from the store."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from datamodules import sources
from datamodules.prepared import prepare
from hpo.settings import StudySettings
from hpo.study import run_study
from tests.servers import model_server
from tests.test_training_predict import cli
from training import notes, promote
from training.config import RunConfig

NAME = "ui-direction"
URI = f"models:/{NAME}@champion"
CONFIG = {"data.tier": "a20", "data.input_size": 16, "data.batch_size": 256, "model.name": "itransformer",
          "train.max_epochs": 2, "train.patience": 2, "train.accelerator": "cpu"}


class PruneTrial1(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number == 1


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A 3-trial study (trial 1 pruned) promoted with 1 seed, in a store of its own."""
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("DIRECTION_CACHE_DIR", str(root / "cache"))
        mp.chdir(root)
        mlflow.set_tracking_uri(uri)
        torch.set_num_threads(1)
        cfg = RunConfig().override(CONFIG)
        run_study(StudySettings(base=cfg, study_name="ui", trials=3, budgets=["20k", "50k"]), prepare(cfg.data),
                  pruner=PruneTrial1(), echo=lambda line: None)
        run_main(promote.main, ["--study", "ui", "--name", NAME, "--seeds", "1", "--quiet"])
    torch.set_num_threads(threads)
    return root, uri


@pytest.fixture
def promoted(store, monkeypatch):
    root, uri = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DIRECTION_CACHE_DIR", str(root / "cache"))
    mlflow.set_tracking_uri(uri)
    return root


def csv_of(ohlcv: pd.DataFrame, path: Path) -> Path:
    """As a user's file holds it: text dates, integer volume, another column."""
    frame = ohlcv.reset_index().rename(columns={"date": "Date"})
    frame.assign(Volume=frame["Volume"].round().astype(np.int64), Note="x").to_csv(path, index=False)
    return path


def scaled(ohlcv: pd.DataFrame, k: float) -> pd.DataFrame:
    """The same days with every log return k times as large: another level of volatility."""
    base = ohlcv["Close"].iloc[0]
    return ohlcv.assign(**{c: base * (ohlcv[c] / base) ** k for c in ("Open", "High", "Low", "Close")})


def test_the_model_takes_a_csv_as_read_and_rest_answers_the_same(promoted, capsys, tmp_path):
    ohlcv = sources.load_ohlcv(None).iloc[-300:]
    path = csv_of(ohlcv, tmp_path / "prices.csv")
    read = pd.read_csv(path)
    assert read["Date"].dtype != "datetime64[ns]" and read["Volume"].dtype == np.int64
    model = mlflow.pyfunc.load_model(URI)
    out = model.predict(read)
    reference = model.predict(ohlcv.reset_index().rename(columns={"date": "Date"}))  # datetimes, floats
    pd.testing.assert_frame_equal(out, reference)
    pd.testing.assert_frame_equal(model.predict(read.set_index("Date")), reference)  # a Date index
    assert list(out.columns) == ["date", "probability", "probability_raw", "outside_train_range"]
    assert len(out) == 300 - 59 - 16 + 1 and out["date"].iloc[-1] == "2018-12-31"

    code, _, err = cli(capsys, "--model-uri", URI, "--data", path, "--out", tmp_path / "p.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv", dtype={"label": "Int8"})
    np.testing.assert_allclose(table["probability"], reference["probability"])
    assert (tmp_path / "p.csv").read_text().splitlines()[-1].endswith(",")  # the unknown label: empty, not NaN
    assert set(table["label"].dropna()) <= {0, 1} and table["label"].isna().sum() == 1

    with model_server(URI, tmp_path) as server:

        def invoke(body: dict) -> tuple[int, dict]:
            request = urllib.request.Request(server.url, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as err:
                return err.code, json.load(err)

        split = {"dataframe_split": json.loads(read.to_json(orient="split", index=False))}
        records = {"dataframe_records": json.loads(read.to_json(orient="records"))}
        for body in (split, records):
            status, answer = invoke(body)
            assert status == 200, answer
            served = pd.DataFrame(answer["predictions"])
            assert served["date"].tolist() == reference["date"].tolist()
            np.testing.assert_allclose(served[["probability", "probability_raw"]],
                                       reference[["probability", "probability_raw"]], rtol=1e-6)
            assert served["outside_train_range"].tolist() == reference["outside_train_range"].tolist()

        status, answer = invoke({"dataframe_split": json.loads(read.iloc[-1:].to_json(orient="split", index=False))})
        assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE"
        assert answer["message"] == ("too few rows for one window: 1 rows leave 0 after tier a20's warm-up (0); "
                                     "the model needs 16 (its input size), i.e. at least 16 rows") or \
            answer["message"].startswith("too few rows: all 1 rows are within the features' warm-up"), answer
        assert "\n" not in answer["message"]
        status, answer = invoke({"dataframe_split": json.loads(read.iloc[[1, 0]].to_json(orient="split", index=False))})
        assert status == 400 and answer["message"] == (
            f"input: dates are not in increasing order: {read['Date'].iloc[0]} in data row 2 comes after "
            f"{read['Date'].iloc[1]}; sort the rows by date"), answer


def test_a_shift_warning_on_another_volatility_none_on_the_training_data(promoted, capsys, tmp_path):
    ohlcv = sources.load_ohlcv(None)
    model = mlflow.pyfunc.load_model(URI)
    same = model.predict(ohlcv.reset_index().rename(columns={"date": "Date"})).attrs["shift"]
    assert same["warning"] is None and same["flagged"] == []
    assert same["labelled"] == len(ohlcv) - 59 - 1  # every row past the warm-up but the last has its label
    wild = model.predict(scaled(ohlcv, 3).reset_index().rename(columns={"date": "Date"}))
    found = wild.attrs["shift"]
    assert found["warning"].startswith("the data lie outside what the model was trained on") and found["flagged"]
    assert max(found["psi"].values()) > 0.25 and "rv_20d" in found["flagged"]
    assert wild["outside_train_range"].max() > 0

    code, _, err = cli(capsys, "--model-uri", URI, "--data", csv_of(scaled(ohlcv, 3), tmp_path / "wild.csv"),
                       "--out", tmp_path / "w.csv")
    lines = err.strip().splitlines()
    assert code == 0 and lines[0] == f"warning: {found['warning']}", err
    assert lines[1].startswith("shift from the train split: largest population stability index")
    assert lines[2].startswith(f"on the {len(ohlcv) - 59 - 16} scored dates whose labels are known: AUROC")
    assert "at promotion on its test split: AUROC" in lines[2]
    assert lines[2].endswith("precede the model's test split (from 2015-12-31): on the data it was promoted on they "
                             "trained and chose it, and the figure is not held out")
    code, _, err = cli(capsys, "--model-uri", URI, "--data", csv_of(ohlcv, tmp_path / "same.csv"),
                       "--out", tmp_path / "s.csv")
    assert code == 0 and "warning" not in err and "shift from the train split" in err


def test_run_names_and_descriptions_read_back_from_the_store(promoted):
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    kinds = {}
    for r in runs:
        kinds.setdefault(r.data.tags["kind"], []).append(r)
    (study,), (promotion,), (seed_run,) = kinds["study"], kinds["promotion"], kinds["train"]
    trials = {int(r.data.tags["trial_number"]): r for r in kinds["trial"]}
    for number, run in trials.items():
        tags = run.data.tags
        state = tags["trial_state"]
        assert run.info.run_name == f"trial {number} {tags['budget']} {tags['style']} {state.lower()}"
        note = tags[notes.NOTE]
        assert note.startswith(f"### Trial {number} of study `ui`: {state}\nbudget {tags['budget']}")
        if state == "COMPLETE":
            m = run.data.metrics
            assert f"**best/val/auroc {m['best/val/auroc']:.4f}** [95% CI {m['best/val/auroc_ci_low']:.4f}" in note
            assert f"best baseline `{tags['best_baseline']}`" in note and "Config: `itransformer` tier a20" in note
    assert trials[1].data.tags["trial_state"] == "PRUNED"
    assert "Pruned at epoch 1: its val_select AUROC was below the median" in trials[1].data.tags[notes.NOTE]

    best = study.data.tags["best_trial"]
    note = study.data.tags[notes.NOTE]
    m = study.data.metrics
    run = f"#/experiments/{study.info.experiment_id}/runs/{study.data.tags['best_run_id']}"
    link = f"({run}?workflowType=machine_learning)"
    assert note.startswith(f"### Study `ui`: best [trial {best}]{link}\n**best/val/auroc {m['best/val/auroc']:.4f}**")
    assert f"the selection null {m['selection/null_auroc_p95']:.4f}" in note
    pm = promotion.data.metrics
    assert note.split(notes.HELD_OUT)[1].startswith(f"**test/auroc {pm['test/auroc']:.4f}** [95% CI")
    assert (f"[promotion run {promotion.info.run_id}](#/experiments/{promotion.info.experiment_id}/runs/"
            f"{promotion.info.run_id}?workflowType=machine_learning), `{NAME}` version 1") in note
    table = client.download_artifacts(study.info.run_id, "study/trials.md")
    rows = Path(table).read_text().splitlines()[2:]
    assert len(rows) == 3 and rows[0].startswith(f"| {best} | complete |")

    assert promotion.info.run_name == f"promotion {NAME}: itransformer-a20-L16, 1 seeds"
    assert seed_run.info.run_name == "itransformer-a20-L16 seed 42"
    assert seed_run.data.tags[notes.NOTE].startswith("### Training run: itransformer a20 L16, seed 42")
    pnote = promotion.data.tags[notes.NOTE]
    assert pnote.startswith(f"### Promotion of study 'ui', best trial {best}")
    assert f"**test/auroc {pm['test/auroc']:.4f}**" in pnote
    assert f"**best/val/auroc {pm['best/val/auroc']:.4f}**" in pnote
    version = client.get_model_version(NAME, "1")
    assert version.description == pnote
    (logged,) = mlflow.search_logged_models(experiment_ids=[promotion.info.experiment_id], output_format="list")
    assert logged.name == "itransformer-a20-L16"
