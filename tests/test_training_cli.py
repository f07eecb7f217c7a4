"""`python -m training` as a user runs it: bad input is one line on stderr, exit 2, no run left RUNNING."""

import pytest
from mlflow.tracking import MlflowClient

from training.__main__ import main
from training.cli import add_run_arguments, config_from_args, run_main
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
])
def test_bad_input_is_one_line_and_no_run(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [*TINY, *args])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "RUNNING" not in runs_by_status()


def test_bad_input_from_a_fresh_process_prints_only_one_line(run_cli):
    proc = run_cli("training", *TINY, "--model", "transformerx")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown model 'transformerx'; known: informer, itransformer, patchtst, timexer"]


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


def test_use_best_from_run_then_flags_override(tiny_config, tmp_path):
    result = train(tiny_config, progress=False)
    cfg = parse("--use-best-from", f"runs:/{result.run_id}")
    assert cfg == tiny_config
    cfg = parse("--use-best-from", f"runs:/{result.run_id}", "--input-size", "24", "--seed", "3")
    assert cfg == tiny_config.override({"data.input_size": 24, "train.seed": 3})
    with pytest.raises(ConfigError, match="holds a config for itransformer, not patchtst"):
        parse("--use-best-from", f"runs:/{result.run_id}", "--model", "patchtst")
    path = tmp_path / "best.json"
    path.write_text(tiny_config.to_json())
    assert parse("--use-best-from", str(path)) == tiny_config
    with pytest.raises(ConfigError, match="runs:/nope"):
        parse("--use-best-from", "runs:/nope")

    client = MlflowClient()
    client.create_registered_model("itransformer-a20")
    version = client.create_model_version("itransformer-a20", result.checkpoint, run_id=result.run_id)
    client.set_registered_model_alias("itransformer-a20", "champion", version.version)
    assert parse("--use-best-from", "models:/itransformer-a20@champion") == tiny_config
    assert parse("--use-best-from", f"models:/itransformer-a20/{version.version}") == tiny_config
    with pytest.raises(ConfigError, match="models:/itransformer-a20@nope"):
        parse("--use-best-from", "models:/itransformer-a20@nope")
