"""`build_trainer` with gradient accumulation on the embedded data: `train.max_steps` counts optimizer steps,
the epoch cut to them still ends with a validation, and `train/loss` is the mean over the epoch's batches."""

import math

import pytest
import pytorch_lightning as pl

from training.train import build_datamodule, build_model, build_trainer


class Record(pl.Callback):
    """Each training batch's (epoch, loss, size), each epoch's `train/loss`, and the validations run."""

    def __init__(self):
        self.steps, self.epochs, self.validations = [], [], 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # Lightning hands callbacks the loss divided by accumulate_grad_batches (what is back-propagated)
        loss = outputs["loss"].item() * trainer.accumulate_grad_batches
        self.steps.append((trainer.current_epoch, loss, len(batch[1])))

    def on_validation_end(self, trainer, pl_module):
        self.validations += 1

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(trainer.callback_metrics["train/loss"].item())


@pytest.mark.parametrize(("accumulate", "max_steps", "max_epochs"), [(2, 3, 2), (3, -1, 2)])
def test_accumulation_counts_optimizer_steps_and_logs_the_whole_epochs_loss(tiny_config, accumulate, max_steps,
                                                                            max_epochs):
    cfg = tiny_config.override({"train.accumulate_grad_batches": accumulate, "train.max_steps": max_steps,
                                "train.max_epochs": max_epochs, "train.patience": 5})
    dm = build_datamodule(cfg)
    batches = math.ceil(len(dm.dataset("train")) / cfg.data.batch_size)
    assert batches > max_steps * accumulate
    record = Record()
    trainer = build_trainer(cfg, dm, callbacks=(record,))
    pl.seed_everything(0, verbose=False)
    trainer.fit(build_model(cfg, dm.n_features), datamodule=dm)

    if max_steps > 0:  # the steps' batches are fewer than an epoch's: one epoch cut to them, then validated
        assert [e for e, _, _ in record.steps] == [0] * (max_steps * accumulate)
        assert trainer.global_step == max_steps
    else:
        assert [e for e, _, _ in record.steps] == [e for e in range(max_epochs) for _ in range(batches)]
        assert trainer.global_step == max_epochs * math.ceil(batches / accumulate)
    assert record.validations == len(record.epochs) == len({e for e, _, _ in record.steps})
    expected = []
    for epoch in range(len(record.epochs)):
        steps = [(loss, size) for e, loss, size in record.steps if e == epoch]
        expected.append(sum(loss * size for loss, size in steps) / sum(size for _, size in steps))
    assert record.epochs == pytest.approx(expected, rel=1e-6)
