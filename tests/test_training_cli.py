"""`python -m training` as a user runs it: bad input is one line on stderr, exit 2, no run left RUNNING."""

import contextlib
import os
import sqlite3
import sys

import pytest
from mlflow.tracking import MlflowClient

from conventions.cli import run_main
from tests.conftest import REPO
from tests.test_data_support import unsorted_ohlcv
from training.__main__ import main
from training.cli import add_run_arguments, config_from_args
from training.config import ConfigError
from training.train import train

TINY = ["--data-tier", "a20", "--input-size", "16", "--max-epochs", "1", "--batch-size", "256",
        "--set", "model.hidden_size=16", "--set", "model.n_heads=2", "--set", "model.n_layers=1",
        "--accelerator", "cpu", "--quiet"]


def runs_by_status():
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return sorted(r.info.status for r in runs)


def parse(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return config_from_args(parser.parse_args(argv))


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "transformerx"], "unknown model 'transformerx'"),
    (["--model", "itransformer", "--set", "model.hidden_size=30", "--set", "model.n_heads=4"], "divisible"),
    (["--model", "patchtst", "--input-size", "8", "--set", "model.patch_len=16"], "patch"),
    (["--model", "patchtst", "--use-best-from", "missing/config.json"], "config file not found"),
    (["--model", "patchtst", "--input-size", "abc"], "data.input_size: cannot read 'abc' as int"),
    (["--max-epochs", "0"], "train.max_epochs must be >= 1"),
    (["--max-steps", "0"], "train.max_steps must be >= 1 (or -1: no limit)"),
    (["--accelerator", "gpu"], "--accelerator gpu: this machine has no CUDA GPU"),
    (["--accelerator", "tpu9"], "unknown accelerator 'tpu9'"),
    (["--data", "."], "is a directory: give a CSV or parquet file"),
    (["--set", "train.loss=hinge"], "unknown loss 'hinge'"),
    (["--seed", "-1"], "train.seed must be in [0, 2**31), got -1"),
    (["--threshold", "1"], "threshold 1.0 within horizon 1 gives one class only in the train"),
    (["--use-best-from", str(REPO / "pyproject.toml")], "pyproject.toml: not a JSON config"),
])
def test_bad_input_is_one_line_and_no_run(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [*TINY, *args])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "RUNNING" not in runs_by_status()


def test_unsorted_dates_are_refused_as_by_every_command(capsys, tmp_path):
    message = unsorted_ohlcv(tmp_path / "unsorted.csv")
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [*TINY, "--data", "unsorted.csv"])
    assert exit_.value.code == 2 and capsys.readouterr().err.strip().splitlines() == [
        f"error: unsorted.csv: {message}"]
    assert runs_by_status() == []


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_bad_input_from_a_fresh_process_prints_only_one_line(run_cli):
    proc = run_cli("training", *TINY, "--model", "transformerx")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown model 'transformerx'; known: informer, itransformer, patchtst, timexer"]


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
@pytest.mark.parametrize("store", ["file", "unwritable", "unreachable"])
def test_a_tracking_store_that_cannot_be_used_is_one_line(run_cli, tmp_path, monkeypatch, store):
    if store == "file":
        uri = (tmp_path / "mlruns").as_uri()
    elif store == "unreachable":  # a refused connection: at once, not after MLflow's retries
        uri = "http://127.0.0.1:1"
    else:  # a path below a regular file: not writable, even for root
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        uri = f"sqlite:///{blocker / 'sub' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    proc = run_cli("training", *TINY, "--model", "itransformer")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "tracking" in lines[0], lines
    assert not (tmp_path / "mlruns").exists()


def test_a_bug_keeps_its_traceback_and_exits_1(run_cli, tmp_path):
    """A `UserError` is one line and exit 2; anything else is a bug: traceback, exit 1."""
    script = ("from conventions.cli import run_main\n"
              "def main():\n    raise ValueError('internal bug')\n"
              "run_main(main)\n")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.strip().endswith("ValueError: internal bug")


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_help_lists_choices_and_defaults(run_cli):
    out = run_cli("training", "--help").stdout
    assert "one of informer, itransformer, patchtst, timexer" in out
    assert "one of a20, a50, a200, file" in out and "default: 80" in out.replace("\n", " ")


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_max_steps_below_one_epoch_validates_at_the_end(run_cli):
    proc = run_cli("training", *TINY, "--model", "itransformer", "--max-steps", "2")
    assert proc.returncode == 0, proc.stderr
    (run,) = [r for e in MlflowClient().search_experiments() for r in MlflowClient().search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED" and "best/val/auroc" in run.data.metrics
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "val/auroc")] == [0]


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_non_finite_loss_fails_the_run(run_cli):
    proc = run_cli("training", *TINY, "--model", "itransformer", "--set", "train.lr=1e30",
                   "--set", "train.grad_clip=0")
    assert proc.returncode == 2, proc.stderr
    assert "non-finite" in proc.stderr.strip().splitlines()[-1]
    assert runs_by_status() == ["FAILED"]


def test_cli_run_prints_summary(run_cli):
    proc = run_cli("training", *TINY, "--model", "itransformer")
    assert proc.returncode == 0, proc.stderr
    assert "best/val/auroc" in proc.stdout
    assert runs_by_status() == ["FINISHED"]


def test_use_best_from_run_then_flags_override(tiny_config, tmp_path, capsys):
    result = train(tiny_config, progress=False)
    cfg = parse("--use-best-from", f"runs:/{result.run_id}")
    assert cfg == tiny_config
    cfg = parse("--use-best-from", f"runs:/{result.run_id}", "--input-size", "24", "--seed", "3", "--folds", "2",
                "--batch-size", str(tiny_config.data.batch_size))
    assert cfg == tiny_config.override({"data.input_size": 24, "train.seed": 3, "data.folds": 2})
    # which fields came from the flags (the source's value where a flag changed it) and which from the source
    report = capsys.readouterr().out.strip().splitlines()[-1]
    assert report.startswith(
        f"--use-best-from runs:/{result.run_id}: from flags: data.input_size=24 (the source: 16), data.batch_size=256, "
        f"data.folds=2 (the source: 1), train.seed=3 (the source: {tiny_config.train.seed}); "
        "from the source: data.{tier=a20, path=None")
    assert "model.{name=itransformer, hidden_size=16" in report and "input_size=24" not in report.split(";")[1]
    with pytest.raises(ConfigError, match="holds a config for itransformer, not patchtst"):
        parse("--use-best-from", f"runs:/{result.run_id}", "--model", "patchtst")
    path = tmp_path / "best.json"
    path.write_text(tiny_config.to_json())
    assert parse("--use-best-from", str(path)) == tiny_config
    with pytest.raises(ConfigError, match="runs:/nope"):
        parse("--use-best-from", "runs:/nope")

    client = MlflowClient()
    client.create_registered_model("itransformer-a20")
    version = client.create_model_version("itransformer-a20", f"runs:/{result.run_id}/checkpoints",
                                          run_id=result.run_id)
    client.set_registered_model_alias("itransformer-a20", "champion", version.version)
    assert parse("--use-best-from", "models:/itransformer-a20@champion") == tiny_config
    assert parse("--use-best-from", f"models:/itransformer-a20/{version.version}") == tiny_config
    with pytest.raises(ConfigError, match="models:/itransformer-a20@nope"):
        parse("--use-best-from", "models:/itransformer-a20@nope")
    with pytest.raises(ConfigError, match="registered without a run"):
        client.create_model_version("itransformer-a20", f"runs:/{result.run_id}/checkpoints")
        parse("--use-best-from", "models:/itransformer-a20/2")


def _runs_in(db) -> int:
    """Runs in a store another process is setting up, read with sqlite alone and read-only: an MLflow client
    here would set up the store's tables itself (MLflow does when some are missing), racing the other
    process's set-up and holding the write lock for seconds."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)) as conn:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:  # no file or no table yet, or locked by a write
        return 0


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_sigterm_as_the_run_opens_ends_it_killed(tmp_path, monkeypatch):
    """SIGTERM (a scheduler's kill) at the moment the run exists, before Lightning has its own handler:
    exit 130 with `error: interrupted`, and the run KILLED, not left RUNNING."""
    import signal
    import subprocess
    import time

    db = tmp_path / "mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "training", *TINY, "--max-epochs", "50", "--patience", "50"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not _runs_in(db):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted", err
    client = MlflowClient(f"sqlite:///{db}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.info.status for r in runs] == ["KILLED"]
