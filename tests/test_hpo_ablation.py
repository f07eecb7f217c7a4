"""`python -m hpo.ablation` on the embedded a20 data with a tiny network: real Lightning, real MLflow (the temp
sqlite store of conftest); 2 input sizes x 2 seeds, one epoch each; SIGTERM and resume in a real process;
the MLproject entry's `set`."""

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conventions.errors import UserError
from datamodules.prepared import prepare
from hpo.ablation.plan import build_parser, plan_from_args
from hpo.ablation.run import run_ablation
from hpo.ablation.summary import CI_SEED, COLUMNS, N_BOOT, Summary, cell_predictions
from hpo.ablation.table import plot
from models.intervals import PairedBootstrap
from tests.conftest import REPO
from training.config import RunConfig
from training.train import REPORT

TINY = ["--data-tier", "a20", "--batch-size", "256", "--max-epochs", "1", "--accelerator", "cpu",
        "--set", "model.hidden_size=16", "--set", "model.n_layers=1", "--set", "model.n_heads=2"]


def plan(*args):
    return plan_from_args(build_parser().parse_args([*TINY, *args]))


def runs_of(kind):
    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("kind") == kind]


def test_cells_table_plot_and_resume(tmp_path):
    p = plan("--model", "itransformer", "--input-sizes", "24,16", "--seeds", "2", "--seed", "7")
    assert [(c.input_size, c.seed) for c in p.cells] == [(16, 7), (16, 8), (24, 7), (24, 8)]
    lines = []
    out = run_ablation(p, echo=lines.append)
    assert (out.ran, out.reused, out.failed) == (4, 0, [])

    (parent,) = runs_of("ablation")
    cells = runs_of("ablation-cell")
    assert parent.info.run_id == out.parent_run_id and parent.info.status == "FINISHED"
    assert parent.info.run_name == p.name and p.name.startswith("ablation-a20-itransformer-")
    assert len(cells) == 4
    client = MlflowClient()
    for run in cells:
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
        assert (tags["model"], run.data.params["data.input_size"], run.data.params["train.seed"]) == (
            "itransformer", tags["input_size"], tags["seed"])
        assert {a.path for a in client.list_artifacts(run.info.run_id, "predictions")} == {"predictions/val.parquet"}
        assert "baseline/best/val/auroc" in run.data.metrics  # a normal training run, baselines and all

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "ablation")}
    assert {"ablation/table.csv", "ablation/table.md", "ablation/plot.png"} <= artifacts
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "ablation/table.csv", str(tmp_path)))
    assert list(table.columns) == COLUMNS
    assert table[["model", "input_size", "seeds"]].values.tolist() == [["itransformer", 16, 2], ["itransformer", 24, 2]]
    for _, row in table.iterrows():
        mine = [r for r in cells if r.data.tags["input_size"] == str(row["input_size"])]
        # val and report dates are the same for every input size: the table's mean over seeds is the mean of
        # the runs' own val AUROCs, and its baseline is the runs' best baseline on the same samples
        assert row["val_auroc"] == pytest.approx(np.mean([r.data.metrics["best/val/auroc"] for r in mine]), abs=1e-6)
        # what chooses the best input size: the seeds' mean of the runs' own objective, on the other part of val
        assert row["select_auroc"] == pytest.approx(
            np.mean([r.data.metrics["best/val_select/auroc"] for r in mine]), abs=1e-4)
        assert row["baseline_auroc"] == pytest.approx(
            np.mean([r.data.metrics[f"baseline/{row['best_baseline']}/val/auroc"] for r in mine]), abs=1e-6)
        assert row["val_auroc_ci_low"] < row["val_auroc"] < row["val_auroc_ci_high"]
        assert row["diff_ci_low"] < row["diff_ci_high"]
        # the seeds' mean AUROC, studentized on the summary's one index matrix, the block from the train labels
        frames = [cell_predictions(r.info.run_id)[REPORT]
                  for r in sorted(mine, key=lambda r: int(r.data.tags["seed"]))]
        boot = PairedBootstrap(frames[0]["label"].to_numpy(), horizon=p.data.horizon, n_boot=N_BOOT, seed=CI_SEED,
                               history=prepare(p.data).labels("train"))
        mean = boot.resample(np.stack([f["probability"].to_numpy() for f in frames]))
        assert (row["val_auroc_ci_low"], row["val_auroc_ci_high"]) == pytest.approx(boot.interval(mean), abs=1e-12)
        assert sorted(row["run_ids"].split()) == sorted(r.info.run_id for r in mine)
        assert len(row["seed_aurocs"].split()) == 2
    markdown = Path(client.download_artifacts(parent.info.run_id, "ablation/table.md", str(tmp_path))).read_text()
    assert "## Summary" in markdown and "| itransformer | 0." in markdown and "| best baseline |" in markdown
    best, other = table.sort_values("select_auroc", ascending=False)["input_size"]
    assert f"itransformer: best at {best}d on val_select (AUROC " in markdown
    assert f"runner-up on val_select {other}d (" in markdown
    assert "distinguishable" in markdown
    assert parent.data.tags["best_input_size.itransformer"] == str(best)
    assert Path(client.download_artifacts(parent.info.run_id, "ablation/plot.png", str(tmp_path))).stat().st_size > 0

    # the same command again: the same parent, nothing run, the same table
    again = run_ablation(plan("--model", "itransformer", "--input-sizes", "16,24", "--seeds", "2", "--seed", "7"))
    assert (again.parent_run_id, again.ran, again.reused) == (out.parent_run_id, 0, 4)
    assert len(runs_of("ablation-cell")) == 4 and len(runs_of("ablation")) == 1
    pd.testing.assert_frame_equal(again.summary.table.reset_index(drop=True), out.summary.table.reset_index(drop=True))


def test_bad_input_is_one_user_error():
    with pytest.raises(UserError, match="itransformer more than once"):
        plan("--model", "itransformer,patchtst,itransformer", "--input-sizes", "16")
    with pytest.raises(UserError, match="16 more than once"):
        plan("--model", "itransformer", "--input-sizes", "16,24,16")
    with pytest.raises(UserError, match="below 2"):
        plan("--model", "itransformer", "--input-sizes", "1,16")
    with pytest.raises(UserError, match="--input-sizes"):
        plan("--model", "itransformer", "--input-size", "16")
    with pytest.raises(UserError, match="2 sources for 3 models"):
        plan("--model", "itransformer,patchtst,informer", "--input-sizes", "16", "--use-best-from", "a.json,b.json")
    with pytest.raises(UserError, match="unknown model"):
        plan("--model", "itransformer,lstm", "--input-sizes", "16")
    with pytest.raises(UserError) as err:
        plan("--model", "itransformer", "--input-sizes", "16,9000")
    message = str(err.value)
    assert "9000" in message and "rows are missing" in message and "the longest input size this data allows" in message
    assert not runs_of("ablation")  # nothing was written


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_cli_error_line(run_cli):
    done = run_cli("hpo.ablation", "--model", "itransformer", "--input-sizes", "60,80,60")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --input-sizes lists 60 more than once"]


@pytest.mark.slow  # over 8 s on 2 cores (fresh interpreters or several studies); CI runs it (-m slow)
def test_sigterm_ends_like_ctrl_c_and_the_rerun_resumes(run_cli, tmp_path):
    """A scheduler's `kill` after the last cell's fit, where Lightning's own SIGTERM handling (inside a fit)
    does not reach: only the command's handler ends the runs as Ctrl-C does."""
    args = [*TINY, "--model", "itransformer", "--input-sizes", "16", "--seeds", "2"]
    MlflowClient().search_experiments()  # the store exists before the process starts (no schema race)
    proc = subprocess.Popen([sys.executable, "-m", "hpo.ablation", *args], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("mlruns/**/predictions/val.parquet"))) < 2:  # the second cell's fit is over
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the ablation ended before the signal: {proc.communicate()[1][-3000:]}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "error: interrupted"
    (parent,) = runs_of("ablation")
    cells = runs_of("ablation-cell")
    # the second cell KILLED, or FINISHED when the signal came after it (in the summary); none RUNNING
    assert parent.info.status == "KILLED" and len(cells) == 2
    assert {r.data.tags["seed"]: r.info.status for r in cells}.items() <= {
        ("42", "FINISHED"), ("43", "FINISHED"), ("43", "KILLED")}
    finished = [r for r in cells if r.info.status == "FINISHED"]

    rerun = run_cli("hpo.ablation", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming parent run {parent.info.run_id}" in rerun.stdout
    for run in finished:  # finished cells are not run again
        assert f"seed {run.data.tags['seed']}: done before (run {run.info.run_id})" in rerun.stdout
    assert f"{2 - len(finished)} cells run now, {len(finished)} done before, 0 failed" in rerun.stdout
    (parent,) = runs_of("ablation")
    after = runs_of("ablation-cell")
    assert parent.info.status == "FINISHED" and "RUNNING" not in {r.info.status for r in after}
    assert sorted(r.data.tags["seed"] for r in after if r.info.status == "FINISHED") == ["42", "43"]
    assert len(after) == len(cells) + 2 - len(finished)
    assert parent.data.tags["best_input_size.itransformer"] == "16"


def test_mlproject_set_reaches_every_cell(tmp_path):
    """`mlflow run . -e ablation -P set=...`: the command MLflow builds from MLproject, parsed by the CLI."""
    from mlflow.projects._project_spec import load_project

    entry = load_project(str(REPO)).get_entry_point("ablation")
    assert entry.parameters["set"].default == ""

    def cells(**params):
        command = entry.compute_command({"model": "itransformer", "input_sizes": "16,24", "seeds": "1", **params},
                                        str(tmp_path))
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "hpo.ablation"] and argv.count("--set") == 1
        return plan_from_args(build_parser().parse_args(argv[3:])).cells

    given = cells(set="model.hidden_size=16 model.dropout=0.3  train.lr=3e-4")
    assert [(c.config.model.hidden_size, c.config.model.dropout, c.config.train.lr) for c in given] == [
        (16, 0.3, 3e-4)] * 2
    defaults = RunConfig.for_model("itransformer")
    unset = cells()  # `--set ''`: MLproject's "not given" sets nothing
    assert [c.config for c in unset] == [defaults.override({"data.input_size": s}) for s in (16, 24)]
    with pytest.raises(UserError, match="the ablation sets it per cell"):
        cells(set="model.dropout=0.3 data.input_size=32")


def test_the_plot_draws_an_interval_that_misses_its_point():
    """A bootstrap interval need not contain the mean over seeds (errorbar refuses negative distances)."""
    row = dict.fromkeys(COLUMNS)
    row.update(model="itransformer", input_size=60, seeds=2, val_auroc=0.60, val_auroc_ci_low=0.61,
               val_auroc_ci_high=0.70, baseline_auroc=0.55, baseline_ci_low=0.5, baseline_ci_high=0.6,
               best_baseline="logistic")
    summary = Summary(pd.DataFrame([row], columns=COLUMNS), [], {}, ("2020-01-01", "2020-12-31"), 250, 5, 100,
                      "stationary-block-t")
    (ax,) = plot(summary, "s").axes
    (bar,) = [c for c in ax.collections if hasattr(c, "get_segments")]
    assert np.allclose(bar.get_segments(), [[[60, 0.61], [60, 0.70]]])
