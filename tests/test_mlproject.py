"""MLproject's entry points as MLflow builds their commands (its own project loader), parsed by each CLI: every
run flag is a parameter that reaches the config, `set` takes several pairs, and "" (the default) gives nothing."""

import shlex
from pathlib import Path

import pytest
from mlflow.projects._project_spec import load_project

from hpo.__main__ import build_parser as hpo_parser
from hpo.ablation.plan import build_parser as ablation_parser
from training.__main__ import build_parser as train_parser
from training.cli import FLAGS, flag_overrides
from training.promote import build_parser as promote_parser

REPO = Path(__file__).resolve().parents[1]
# entry -> (module, parser, run flags it leaves to its own parameters, its required parameters)
ENTRIES = {
    "train": ("training", train_parser, (), {}),
    "hpo": ("hpo", hpo_parser, (), {}),
    "promote": ("training.promote", promote_parser, ("--model",), {"name": "spy-direction"}),
    "ablation": ("hpo.ablation", ablation_parser, ("--model", "--input-size"), {}),
}
# a value for each run flag that differs from every default
VALUES = {"--model": "timexer", "--data-tier": "a50", "--data": "prices.csv", "--input-size": "64", "--horizon": "5",
          "--threshold": "0.02", "--batch-size": "128", "--seed": "7", "--max-steps": "300", "--max-epochs": "9",
          "--patience": "4", "--accelerator": "cpu", "--precision": "bf16-mixed", "--folds": "3",
          "--window": "rolling"}


def command(entry: str, params: dict[str, str]) -> list[str]:
    module, _, _, required = ENTRIES[entry]
    spec = load_project(str(REPO)).get_entry_point(entry)
    argv = shlex.split(spec.compute_command({**required, **params}, str(REPO)))
    assert argv[:3] == ["python", "-m", module]
    return argv[3:]


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_run_flag_and_set_reach_the_config(entry):
    _, parser, own, _ = ENTRIES[entry]
    flags = [flag for flag in FLAGS if flag not in own]
    assert set(VALUES) == set(FLAGS)
    params = {flag[2:].replace("-", "_"): VALUES[flag] for flag in flags}
    params["set"] = "model.dropout=0.3  train.matmul_precision=high"
    args = parser().parse_args(command(entry, params))
    expected = {FLAGS[flag][0]: VALUES[flag] for flag in flags}
    assert flag_overrides(args, skip=tuple(FLAGS[flag][0] for flag in own)) == {
        **expected, "model.dropout": "0.3", "train.matmul_precision": "high"}


@pytest.mark.parametrize("entry", ENTRIES)
def test_defaults_give_no_run_flag(entry):
    """Only the entry's own defaults (model and tier where it has them) reach the config."""
    _, parser, own, _ = ENTRIES[entry]
    spec = load_project(str(REPO)).get_entry_point(entry)
    args = parser().parse_args(command(entry, {}))
    given = {flag for flag in FLAGS if flag not in own
             if spec.parameters[flag[2:].replace("-", "_")].default not in ("", None)}
    assert flag_overrides(args, skip=tuple(FLAGS[flag][0] for flag in own)) == {
        FLAGS[flag][0]: spec.parameters[flag[2:].replace("-", "_")].default for flag in given}
