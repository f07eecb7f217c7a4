"""`python -m training.promote` end to end on a tiny study: real Optuna journal, real Lightning, real MLflow
(the temp sqlite store of conftest), the real registry and pyfunc loading."""

from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from datamodules import sources
from datamodules.datamodule import TierDataModule
from datamodules.prepared import prepare
from hpo.settings import StudySettings
from hpo.study import run_study
from tests.test_training_cli import parse
from training import tracking
from training.config import RunConfig
from training.evaluate import predict_probs
from training.promote import main
from training.promotion.heldout import held_out_from
from training.promotion.ledger import ledger, record_look
from training.train import build_model

NAME = "spy-direction"


def all_runs():
    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def promote(capsys, *args):
    """`python -m training.promote ARGS` in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        run_main(main, [*args, "--quiet"])
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def versions(name=NAME):
    try:
        return MlflowClient().search_model_versions(f"name = '{name}'")
    except Exception:
        return []


@pytest.fixture
def study(tiny_config):
    cfg = tiny_config.override({"train.max_epochs": 1})
    out = run_study(StudySettings(base=cfg, study_name="tiny", trials=2, budgets=["20k"]), prepare(cfg.data),
                    echo=lambda line: None)
    return out


def test_promote_a_study_registers_one_evaluated_ensemble(study, capsys, tmp_path):
    code, out, err = promote(capsys, "--study", "tiny", "--name", NAME, "--seeds", "2")
    assert code == 0, err
    assert "warning" not in err
    client = MlflowClient()
    (version,) = versions()
    assert client.get_model_version_by_alias(NAME, "champion").version == version.version
    runs = all_runs()
    (promotion,) = [r for r in runs if r.data.tags["kind"] == "promotion"]
    assert promotion.info.status == "FINISHED" and version.run_id == promotion.info.run_id
    assert {r.info.status for r in runs} == {"FINISHED"}

    # the promotion run: per seed val and test, the ensemble with its interval beside every baseline
    m = promotion.data.metrics
    for seed in (42, 43):  # named by the seed itself, as in the output and the seed runs' names
        assert f"seed/{seed}/best/val/auroc" in m and f"seed/{seed}/test/auroc" in m
    for key in ("test/auroc", "test/auroc_ci_low", "test/auroc_ci_high", "test/auroc_seed_mean", "test/auroc_seed_sd",
                "test/auroc_vs_best_baseline_ci_low", "test/auroc_vs_best_baseline_ci_high", "test/brier_calibrated",
                "test/brier_val_calibrated", "best/val/auroc", "best/val/auroc_ci_low", "best/val/auroc_ci_high"):
        assert np.isfinite(m[key]), key
    # one name, one set of samples: `val/*` is the per-epoch val_select AUROC of train and trial runs; the
    # ensemble on val_report is `best/val/*`, as a run's best checkpoint there
    assert not [k for k in m if k.startswith("val/")]
    assert m["best/val/auroc_seed_mean"] == pytest.approx(np.mean([m["seed/42/best/val/auroc"],
                                                                  m["seed/43/best/val/auroc"]]))
    for name in ("majority", "volatility", "logistic", "boosting"):
        assert f"baseline/{name}/test/auroc" in m
    assert m["test/auroc_ci_low"] <= m["test/auroc"] <= m["test/auroc_ci_high"]
    assert m["test/auroc_seed_mean"] == pytest.approx(np.mean([m["seed/42/test/auroc"], m["seed/43/test/auroc"]]))
    artifacts = {a.path for d in ("", "plots", "predictions") for a in client.list_artifacts(promotion.info.run_id, d)}
    assert {"plots/test_roc.png", "plots/test_calibration.png", "predictions/test.parquet"} <= artifacts
    assert "test/auroc" in out and "boosting" in out and f"registered {NAME} version 1" in out

    # seeds are nested train runs with checkpoints; no run but the promotion holds a test metric
    seeds = [r for r in runs if r.data.tags.get("promotion_run_id") == promotion.info.run_id]
    assert len(seeds) == 2 and {r.data.tags["kind"] for r in seeds} == {"train"}
    assert {r.data.tags["mlflow.parentRunId"] for r in seeds} == {promotion.info.run_id}
    for run in runs:
        if run.info.run_id != promotion.info.run_id:
            assert not [k for k in run.data.metrics if k.startswith("test/")], run.data.tags["kind"]
    for run in seeds:
        assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt"]

    # version tags
    tags = version.tags
    assert tags["study"] == "tiny" and tags["trial"] == client.get_run(study.parent_run_id).data.tags["best_trial"]
    assert (tags["model"], tags["tier"], tags["input_size"], tags["horizon"]) == ("itransformer", "a20", "16", "1")
    for key in ("threshold", "data_fingerprint", "val_auroc_ci_low", "test_auroc", "test_auroc_ci_high",
                "best_baseline", "best_baseline_test_auroc"):
        assert tags[key], key

    # the pyfunc: the seeds' own checkpoints give its raw probabilities; the last input date is scored
    cfg = RunConfig.from_params(promotion.data.params)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    ohlcv = sources.load_ohlcv(None)
    scored = model.predict(ohlcv.reset_index().rename(columns={"date": "Date"})).set_index("date")
    assert scored.index[-1] == str(ohlcv.index[-1].date())
    dm = TierDataModule(cfg.data)
    own = []
    for run in sorted(seeds, key=lambda r: r.data.tags["promotion_seed"]):
        net = build_model(cfg, dm.n_features)
        state = torch.load(client.download_artifacts(run.info.run_id, "checkpoints/best.ckpt", str(tmp_path)),
                           map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict(state)
        own.append(predict_probs(net, dm.eval_loader("test")))
    test_dates = dm.dates("test").strftime("%Y-%m-%d")
    np.testing.assert_allclose(scored.loc[test_dates, "probability_raw"], np.mean(own, axis=0), atol=1e-6)
    table = pd.read_parquet(client.download_artifacts(promotion.info.run_id, "predictions/test.parquet"))
    np.testing.assert_allclose(scored.loc[test_dates, "probability"], table["probability_deployed"], atol=1e-6)
    np.testing.assert_allclose(table["probability"], np.mean(own, axis=0), atol=1e-6)
    short = model.predict(ohlcv.iloc[-120:])  # the date as the index, a short history: still up to the last day
    assert short["date"].iloc[-1] == str(ohlcv.index[-1].date()) and len(short) < 120

    # transfer: the champion's model fields, data settings from flags
    champion = parse("--use-best-from", f"models:/{NAME}@champion", "--data-tier", "a50", "--input-size", "24")
    assert champion.model == cfg.model and champion.train == cfg.train
    assert (champion.data.tier, champion.data.input_size) == ("a50", 24)
    assert parse("--use-best-from", f"models:/{NAME}/1") == cfg
    report = capsys.readouterr().out
    assert "from flags: data.tier=a50 (the source: a20), data.input_size=24 (the source: 16)" in report
    assert "model.{name=itransformer" in report

    # a second look at the same study's test split: warned, counted, compared with the alias's holder
    code, out, err = promote(capsys, "--study", "tiny", "--name", NAME, "--seeds", "1", "--alias", "champion")
    assert code == 0, err
    assert "warning: the test split of study 'tiny' has been read 1 time(s) before" in err
    assert "previous holder of the alias: version 1" in out and "new minus previous" in out
    assert sorted(int(v.version) for v in versions()) == [1, 2]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    parent = client.get_run(study.parent_run_id)
    promotions = [r.info.run_id for r in all_runs() if r.data.tags["kind"] == "promotion"]
    assert parent.data.metrics["test_evaluations"] == 2
    assert sorted(ledger(study.parent_run_id)) == sorted(promotions)
    assert ledger(study.parent_run_id) == sorted(promotions, key=lambda r: client.get_run(r).info.start_time)


BAD = [
    (["--study", "nope"], "unknown study 'nope'"),
    (["--study", "empty"], "study 'empty' has no completed trial"),
    (["--run", "0123456789abcdef"], "unknown run '0123456789abcdef'"),
    (["--study", "empty", "--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--study", "empty", "--name", "a/b"], "is not a valid MLflow model name"),
    (["--study", "empty", "--alias", "latest"], "reserved"),
    (["--use-best-from", "models:/nope@champion"], "models:/nope@champion"),
    (["--use-best-from", "cfg.json", "--model", "patchtst"], "holds a config for itransformer, not patchtst"),
    (["--study", "empty", "--run", "x"], "give exactly one of"),
    (["--study", "empty", "--storage", "other.journal"], "unknown study 'empty' with storage other.journal"),
    (["--run", "x", "--storage", "x"], "--storage picks a study"),
    (["--use-best-from", "cfg.json", "--set", "data.val_frac=0.10 data.test_frac=0.20"],
     "config file cfg.json: the test split starts"),
]


def test_bad_input_is_one_line_and_leaves_nothing(capsys, tmp_path, tiny_config):
    """One store for all cases (a fresh sqlite store costs seconds): after each, no version, no new run."""
    (tmp_path / "cfg.json").write_text(tiny_config.to_json())
    client = MlflowClient()
    run = client.create_run(tracking.experiment_id(), run_name="empty", tags={"kind": "study", "storage": "x"})
    client.set_terminated(run.info.run_id)
    for args, message in BAD:
        code, _, err = promote(capsys, "--name", NAME, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
        assert not versions() and [r.data.tags["kind"] for r in all_runs()] == ["study"], args
        assert [r.info.status for r in all_runs()] == ["FINISHED"]


def test_simultaneous_looks_are_all_recorded():
    """Four promotions recording reads of one study's test split at once (threads, the real sqlite
    store): every read is in the ledger and the count metric ends at the total."""
    client = MlflowClient()
    study_run = client.create_run(client.create_experiment("ledger")).info.run_id
    readers = [[f"promotion{k}{i}" for i in range(5)] for k in range(4)]
    with ThreadPoolExecutor(len(readers)) as pool:
        counts = list(pool.map(lambda runs: [record_look(study_run, run) for run in runs], readers))
    assert sorted(ledger(study_run)) == sorted(run for runs in readers for run in runs)
    assert client.get_run(study_run).data.metrics["test_evaluations"] == 20
    assert all(runs == sorted(set(runs)) for runs in counts)  # each reader's count only grows


def test_the_test_split_must_be_held_out_from_the_data_that_chose_the_config(tiny_config):
    """Same settings: held out (the splits' purge gap is the horizon plus the embargo). Test moved into the
    source's val split, or starting after it but within its labels' horizon: not held out."""
    same = prepare(tiny_config.data)
    assert held_out_from(None, tiny_config, same) is None and held_out_from(same.seen, tiny_config, same) is None
    wider = prepare(tiny_config.override({"data.val_frac": 0.10, "data.test_frac": 0.20}).data)
    assert "would not be held out" in held_out_from(None, tiny_config, wider)
    assert f"chosen on rows through {same.seen.until}" in held_out_from(same.seen, tiny_config, wider)
    far = tiny_config.override({"data.horizon": 20, "data.embargo": 0})
    later = prepare(tiny_config.override({"data.embargo": 0, "data.val_frac": 0.145, "data.test_frac": 0.155}).data)
    first = later.dates("test")[0]  # after that date, but within its labels' 20 days
    assert first > prepare(far.data).dates("val")[-1]
    assert f"starts {first.date()}" in held_out_from(None, far, later)
    assert "labels 20 day(s) ahead" in held_out_from(None, far, later)


def test_promotion_needs_the_rows_the_config_was_chosen_on_and_allows_new_ones(capsys, tmp_path, tiny_config):
    """A run trained on data.csv (a relative path) is promoted from another directory: a cut-down copy of
    the file under the same name is refused (one error line naming both fingerprints, nothing written); the
    same rows with newer ones appended are accepted."""
    from training.train import train

    rows = sources.load_ohlcv().reset_index().rename(columns={"date": "Date"})
    for folder, n in (("chosen", 4000), ("cut", 3000), ("grown", len(rows))):
        (tmp_path / folder).mkdir()
        rows.iloc[:n].to_csv(tmp_path / folder / "data.csv", index=False)
    cfg = tiny_config.override({"data.path": "data.csv", "train.max_epochs": 1})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path / "chosen")
        trained = train(cfg, progress=False, plots=False, log_checkpoint=False)
    seen = trained.data.seen
    tags = MlflowClient().get_run(trained.run_id).data.tags
    assert (tags["data.source"], tags["data.seen_fingerprint"], tags["data.seen_until"]) == (
        str(tmp_path / "chosen" / "data.csv"), seen.fingerprint, seen.until)
    # every row up to the end of the last val label, and no other
    last = trained.data.warmup + trained.data.ends["val"][-1] + cfg.data.horizon
    assert seen.until == str(rows["Date"].iloc[last].date())
    assert seen.fingerprint == sources.fingerprint(sources.validate_ohlcv(rows.iloc[: last + 1]))

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path / "cut")
        code, _, err = promote(capsys, "--run", trained.run_id, "--name", NAME, "--seeds", "1")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        cut = prepare(cfg.override({"data.path": str(tmp_path / "cut" / "data.csv")}).data)
        assert seen.fingerprint in lines[0] and cut.fingerprint_through(seen.until) in lines[0]
        assert f"rows through {seen.until} of {tmp_path / 'cut' / 'data.csv'}" in lines[0]
        assert not versions() and [(r.info.run_id, r.info.status) for r in all_runs()] == [
            (trained.run_id, "FINISHED")]

        mp.chdir(tmp_path / "grown")
        code, out, err = promote(capsys, "--run", trained.run_id, "--name", NAME, "--seeds", "1")
        assert code == 0, err
    (version,) = versions()
    assert version.tags["data.seen_fingerprint"] == seen.fingerprint


def test_only_promotion_reads_that_the_test_labels_are_one_class(capsys, tmp_path, tiny_config):
    """Prices only fall after the last val label: every test label is 0. Preparing (training, a study, the
    data summary) never looks at test labels; promotion refuses it with one error line, nothing written."""
    rows = sources.load_ohlcv()
    until = prepare(tiny_config.data).seen.until
    after = rows.index > pd.Timestamp(until)
    falling = rows["Close"][~after].iloc[-1] * 0.995 ** np.arange(1, after.sum() + 1)
    for column in ("Open", "High", "Low", "Close"):
        rows.loc[after, column] = falling
    rows.reset_index().rename(columns={"date": "Date"}).to_csv(tmp_path / "falling.csv", index=False)
    cfg = tiny_config.override({"data.path": str(tmp_path / "falling.csv")})
    prepared = prepare(cfg.data)
    assert np.unique(prepared.labels("test")).tolist() == [0.0]
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    code, _, err = promote(capsys, "--use-best-from", "cfg.json", "--name", NAME, "--seeds", "1")
    assert code == 2 and err.strip().splitlines() == [
        f"error: threshold {cfg.data.threshold} within horizon {cfg.data.horizon} gives one class only in the test "
        "samples: AUROC, the baselines and the intervals need rises and non-rises; choose another --threshold or "
        "--horizon"]
    assert not versions() and not all_runs()
