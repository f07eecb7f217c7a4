"""Precision choice, the non-finite loss check without a per-step host sync, and evaluation on the
device the model trained on."""

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from conventions.cli import run_main
from models.classifier import build_classifier
from tests.test_training_cli import TINY, parse, runs_by_status
from training.__main__ import main
from training.config import ConfigError, TrainConfig
from training.evaluate import predict_probs
from training.train import train


@pytest.fixture
def matmul_precision():
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def test_bf16_mixed_trains_on_cpu_and_is_logged(matmul_precision):
    run_main(main, [*TINY, "--model", "itransformer", "--precision", "bf16-mixed",
                    "--set", "train.matmul_precision=high"])
    (run,) = [r for e in MlflowClient().search_experiments()
              for r in MlflowClient().search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED"
    assert run.data.params["train.precision"] == "bf16-mixed"
    assert run.data.params["train.matmul_precision"] == "high"
    assert 0.0 <= run.data.metrics["best/val/auroc"] <= 1.0
    assert torch.get_float32_matmul_precision() == "high"  # set for the run


def test_precision_flag_and_defaults():
    assert parse("--precision", "bf16-mixed").train.precision == "bf16-mixed"
    assert TrainConfig().precision == "32-true" and TrainConfig().matmul_precision == "highest"


@pytest.mark.parametrize(("fields", "message"), [
    ({"precision": "fp8"}, "unknown precision 'fp8'; known: 32-true, bf16-mixed, 16-mixed"),
    ({"precision": "16-mixed", "accelerator": "cpu"}, "--precision 16-mixed needs a GPU"),
    ({"matmul_precision": "medium"}, "unknown train.matmul_precision 'medium'; known: highest, high"),
])
def test_bad_precision_is_a_config_error(fields, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**fields).check()


def test_bad_precision_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [*TINY, "--precision", "16-true"])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "16-true" in line and "32-true, bf16-mixed, 16-mixed" in line


def test_diverging_run_ends_failed_with_the_non_finite_message(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [*TINY, "--model", "itransformer", "--set", "train.lr=1e30", "--set", "train.grad_clip=0"])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: non-finite training loss") and "lower the learning rate" in last
    assert runs_by_status() == ["FAILED"]


def test_training_step_makes_no_host_sync():
    """On the meta device a tensor has no data: `bool(loss)`, `.item()` or a copy to the host would raise."""
    with torch.device("meta"):
        model = build_classifier("itransformer", 4, 8, hidden_size=16, n_layers=1, n_heads=2)
        batch = torch.randn(8, 8, 4), torch.ones(8)
    for step in range(3):
        loss = model.training_step(batch, step)
    assert loss.device.type == "meta" and model.train_losses.mean().device.type == "meta"  # the epoch's mean too


class DeviceRecorder(nn.Module):
    """Wraps a module; records the device of every input it sees and of its parameters at that time."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append((x.device, next(self.parameters()).device))
        return self.inner(x)


def test_predict_probs_runs_on_the_given_device_and_restores_the_module():
    recorder = DeviceRecorder(nn.Sequential(nn.Flatten(), nn.Linear(12, 1)))
    recorder.train()
    loader = [(torch.randn(5, 3, 4), torch.zeros(5)), (torch.randn(2, 3, 4), torch.zeros(2))]
    probs = predict_probs(recorder, loader, device=torch.device("cpu"))
    assert probs.shape == (7,) and ((probs > 0) & (probs < 1)).all()
    assert recorder.seen == [(torch.device("cpu"), torch.device("cpu"))] * 2
    assert recorder.training  # mode restored
    predict_probs(recorder, loader)  # default: the parameters' device
    assert len(recorder.seen) == 4 and set(recorder.seen) == {(torch.device("cpu"), torch.device("cpu"))}


class RecordEvaluationDevice(pl.Callback):
    """After fit, record what the final evaluation feeds the model: the batch device and the parameters'."""

    def __init__(self):
        self.root, self.seen = None, []

    def on_fit_end(self, trainer, pl_module):
        self.root = trainer.strategy.root_device
        pl_module.register_forward_pre_hook(
            lambda module, args: self.seen.append((args[0].device, next(module.parameters()).device)))


def test_final_evaluation_uses_the_training_device(tiny_config):
    recorder = RecordEvaluationDevice()
    result = train(tiny_config.override({"train.max_epochs": 1}), callbacks=(recorder,), progress=False,
                   plots=False, log_checkpoint=False)
    assert recorder.seen and set(recorder.seen) == {(recorder.root, recorder.root)}
    assert 0.0 <= result.val_auroc <= 1.0
