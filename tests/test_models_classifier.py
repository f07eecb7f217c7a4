"""DirectionClassifier under a real Lightning Trainer."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from models.classifier import DirectionClassifier, build_classifier
from models.losses import NonFiniteLossError, make_loss
from models.registry import available, build_backbone

L, F = 24, 4
TINY = {"hidden_size": 16, "n_layers": 1, "n_heads": 2, "ff_mult": 1, "patch_len": 8, "stride": 4}


def _loader(n, seed, x_fill=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, L, F, generator=g)
    if x_fill is not None:
        x[0, 0, 0] = x_fill
    y = torch.tensor([0, 1] * (n // 2))
    return DataLoader(TensorDataset(x, y), batch_size=8)


def _trainer(max_steps):
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)


@pytest.mark.parametrize("name", available())
def test_fit_logs_train_and_val_metrics(name):
    pl.seed_everything(0)
    model = build_classifier(name, F, L, loss="focal", **TINY)
    trainer = _trainer(max_steps=4)
    trainer.fit(model, _loader(32, 0), _loader(16, 1))
    metrics = trainer.callback_metrics
    for key in ("train/loss", "val/loss", "val/auroc", "val/ap", "val/brier", "val/direction_accuracy",
                "val/balanced_accuracy"):
        assert key in metrics and torch.isfinite(metrics[key]), key


def test_test_and_predict():
    model = build_classifier("itransformer", F, L, loss="bce", **TINY)
    trainer = _trainer(max_steps=1)
    trainer.test(model, _loader(16, 2))
    assert {"test/loss", "test/auroc"} <= set(trainer.callback_metrics)
    probs = torch.cat(trainer.predict(model, _loader(10, 3)))
    assert probs.shape == (10,) and ((probs >= 0) & (probs <= 1)).all()


def test_inf_input_raises_non_finite_loss():
    model = build_classifier("itransformer", F, L, **TINY)
    with pytest.raises(NonFiniteLossError, match="non-finite training loss .* at global step 0"):
        _trainer(max_steps=2).fit(model, _loader(16, 0, x_fill=float("inf")))


def test_hparams_record_the_model_not_the_modules():
    model = build_classifier("patchtst", F, L, loss="focal", focal_gamma=1.5, lr=3e-4, **TINY)
    hp = model.hparams
    assert hp["name"] == "patchtst" and hp["lr"] == 3e-4 and hp["focal_gamma"] == 1.5 and hp["hidden_size"] == 16
    assert "backbone" not in hp and "loss" not in hp
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["lr"] == 3e-4


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_direct_construction_with_float_column_labels():
    backbone = build_backbone("timexer", F, L, **TINY)
    model = DirectionClassifier(backbone, make_loss("bce"), dropout=0.2)
    x, y = torch.randn(3, L, F), torch.tensor([[1.0], [0.0], [1.0]])
    assert model.training_step((x, y), 0).ndim == 0
