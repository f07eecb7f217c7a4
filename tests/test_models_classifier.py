"""DirectionClassifier under a real Lightning Trainer."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from models.classifier import DECAYED, DirectionClassifier, EpochLosses, build_classifier
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


def test_direct_construction_with_float_column_labels():
    backbone = build_backbone("timexer", F, L, **TINY)
    model = DirectionClassifier(backbone, make_loss("bce"), dropout=0.2)
    x, y = torch.randn(3, L, F), torch.tensor([[1.0], [0.0], [1.0]])
    assert model.training_step((x, y), 0).ndim == 0


class _StepLosses(pl.Callback):
    """Each step's loss and batch size as Lightning hands them to callbacks, and `train/loss` per epoch."""

    def __init__(self):
        self.steps, self.epochs = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append((trainer.current_epoch, outputs["loss"].item(), len(batch[1])))

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(trainer.callback_metrics["train/loss"].item())


@pytest.mark.parametrize("max_steps", [-1, 4])
def test_train_loss_is_the_epochs_mean_weighted_by_batch_size(max_steps):
    """20 samples in batches of 8, 8, 4: each epoch's `train/loss` is sum(loss * size) / sum(size) of its
    steps, also when `max_steps` ends training in the middle of an epoch."""
    pl.seed_everything(0)
    model = build_classifier("itransformer", F, L, lr=1e-2, **TINY)
    record = _StepLosses()
    trainer = pl.Trainer(max_epochs=2, max_steps=max_steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[record])
    trainer.fit(model, _loader(20, 0))
    expected = []
    for epoch in sorted({e for e, _, _ in record.steps}):
        steps = [(loss, size) for e, loss, size in record.steps if e == epoch]
        expected.append(sum(loss * size for loss, size in steps) / sum(size for _, size in steps))
    assert len(record.steps) == (6 if max_steps < 0 else 4)
    assert record.epochs == pytest.approx(expected, rel=1e-6)


def test_epoch_losses_name_the_first_non_finite_step_after_a_clean_check():
    losses = EpochLosses()
    losses.add(torch.tensor(1.0), 0, 0, 8)
    losses.add(torch.tensor(2.0), 1, 1, 4)
    losses.check()
    losses.add(torch.tensor(4.0), 2, 2, 4)
    assert losses.mean().item() == pytest.approx((8 + 8 + 16) / 16)
    losses.add(torch.tensor(float("nan")), 3, 3, 4)
    losses.add(torch.tensor(float("inf")), 4, 4, 4)
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss nan at global step 3 \(batch 3\)"):
        losses.check()
    losses.check()  # cleared: the error is raised once


@pytest.mark.parametrize("name", ["itransformer", "patchtst"])
def test_weight_decay_shrinks_the_weight_matrices_only(name):
    """AdamW with zero gradients moves a parameter only by its decoupled decay, p * (1 - lr * wd): every
    parameter of >= 2 dimensions shrinks by that factor; biases and norm weights do not move."""
    model = build_classifier(name, F, L, lr=0.1, weight_decay=0.5, **TINY)
    optimizer = model.configure_optimizers()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    shapes = {n: p.ndim for n, p in model.named_parameters()}
    assert any(d >= 2 for d in shapes.values()) and any("norm" in n for n in shapes if shapes[n] < 2)
    for n, p in model.named_parameters():
        expected = before[n] * (1 - 0.1 * 0.5) if p.ndim >= 2 else before[n]
        torch.testing.assert_close(p.detach(), expected, msg=n)
    assert DECAYED.startswith("parameters with >= 2 dimensions")
