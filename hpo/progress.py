"""What a person watching a study sees: after each trial, trials done of the total, the elapsed time and an
estimate of the time left; during a trial, its epochs (a progress bar on a terminal, one line per epoch
otherwise)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pytorch_lightning as pl
from tqdm import tqdm

from training.train import MONITOR


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class StudyProgress:
    """`done_before`: trials the study held when this session started; the estimate uses this session's
    mean trial time."""

    def __init__(self, total: int, done_before: int):
        self.total, self.done_before, self.start = total, done_before, time.monotonic()

    def status(self, done: int) -> str:
        elapsed = time.monotonic() - self.start
        ran = done - self.done_before
        left = f", about {_clock(elapsed / ran * max(self.total - done, 0))} left" if ran > 0 else ""
        return f"[{min(done, self.total)}/{self.total} trials, {_clock(elapsed)} elapsed{left}]"


class EpochProgress(pl.Callback):
    """The running trial's epochs: a tqdm bar when `stream` is a terminal, else one line per epoch."""

    def __init__(self, label: str, echo: Callable[[str], None] = print, stream=None):
        self.label, self.echo = label, echo
        self.tty = (stream or sys.stdout).isatty()
        self.bar: tqdm | None = None
        self.start = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.tty:
            self.bar = tqdm(total=trainer.max_epochs, desc=self.label, unit="epoch", leave=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        auroc = trainer.callback_metrics.get(MONITOR)
        shown = "" if auroc is None else f"{MONITOR} {float(auroc):.4f}"
        if self.bar is not None:
            self.bar.set_postfix_str(shown)
            self.bar.update(1)
        else:
            self.echo(f"  {self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {shown} "
                      f"({time.monotonic() - self.start:.0f} s)")

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
