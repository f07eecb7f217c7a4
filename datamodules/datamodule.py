"""`TierDataModule`: the prepared tier (see `prepared.py`) served to Lightning as window datasets.

It takes the run's `DataConfig` whole. The train loader shuffles with a generator seeded from
`torch.initial_seed()`, i.e. from the run's `seed_everything(seed)`; val and test keep date order.

Loaders are `WindowBatches` built on the device the batches are for (`device`, else the attached
Trainer's root device, else the CPU): on an accelerator the scaled features and labels are put there once
and each batch is an index gather there; on the CPU they are gathered from the prepared array itself. With
`num_workers > 0` they are per-sample `DataLoader`s (pinned when the batches go to CUDA). Every path gives
the same batches in the same order for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from datamodules.config import DataConfig
from datamodules.prepared import Prepared, prepare
from datamodules.splits import STAGES
from datamodules.windows import WindowBatches, WindowDataset, Windows

Loader = DataLoader | WindowBatches


class TierDataModule(pl.LightningDataModule):
    def __init__(self, config: DataConfig, *, cache_dir: str | None = None, num_workers: int = 0,
                 device: torch.device | str | None = None, prepared: Prepared | None = None):
        super().__init__()
        self.config = config
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.num_workers = num_workers
        self.device = device  # where batches are built; None: the attached Trainer's root device, else the CPU
        self._on_device: dict[tuple[str, str], Windows] = {}
        self._given = prepared  # the data to serve (e.g. a fold's, `Prepared.fold`); None: prepare(config)
        self._prepared: Prepared | None = None
        self._datasets: dict[str, WindowDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Build everything once (all stages); later calls return at once. Bad input raises `DataError`."""
        if self._prepared is not None:
            return
        prepared = self._given if self._given is not None else prepare(self.config, self.cache_dir)
        self._datasets = {
            name: WindowDataset(prepared.x, prepared.y, prepared.ends[name], self.config.input_size)
            for name in prepared.ends
        }
        self._prepared = prepared

    @property
    def prepared(self) -> Prepared:
        if self._prepared is None:
            self.setup()
        return self._prepared

    def dataset(self, stage: str) -> WindowDataset:
        self.setup()
        if stage not in self._datasets:
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(self._datasets)}")
        return self._datasets[stage]

    # -- loaders ------------------------------------------------------------------------------------------

    def batch_device(self) -> torch.device:
        """The device batches are built on: `device`, else the attached Trainer's root device, else the CPU."""
        if self.device is not None:
            return torch.device(self.device)
        if self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def windows(self, stage: str, device: torch.device | str) -> Windows:
        """The stage's windows on `device`; every stage windows the same prepared array, put on a device
        once."""
        device = torch.device(device)
        key = (stage, str(device))
        if key not in self._on_device:
            shared = next((w.base for (_, d), w in self._on_device.items() if d == str(device)), None)
            self._on_device[key] = self.dataset(stage).on(device, shared)
        return self._on_device[key]

    def _loader(self, stage: str, shuffle: bool) -> Loader:
        generator = torch.Generator().manual_seed(torch.initial_seed()) if shuffle else None
        device = self.batch_device()
        if self.num_workers > 0:
            return DataLoader(self.dataset(stage), batch_size=self.config.batch_size, shuffle=shuffle,
                              drop_last=False, generator=generator, num_workers=self.num_workers,
                              pin_memory=device.type == "cuda")
        return WindowBatches(self.windows(stage, device), self.config.batch_size, shuffle=shuffle,
                             generator=generator)

    def train_dataloader(self) -> Loader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> Loader:
        """The selection part of val (`prepared.VAL_PARTS`): the epoch is chosen on it."""
        return self._loader("val_select", shuffle=False)

    def eval_loader(self, stage: str) -> Loader:
        """Any stage or val part (`prepared.ends`), in date order."""
        return self._loader(stage, shuffle=False)

    def test_dataloader(self) -> Loader:
        return self._loader("test", shuffle=False)

    # -- what the training code reads -------------------------------------------------------------------

    @property
    def n_features(self) -> int:
        return len(self.prepared.feature_names)

    @property
    def feature_names(self) -> list[str]:
        return list(self.prepared.feature_names)

    @property
    def fingerprint(self) -> str:
        """sha256 of the data, the tier definition and the label/split settings."""
        return self.prepared.fingerprint

    @property
    def data_fingerprint(self) -> str:
        """sha256 of the raw input only."""
        return self.prepared.data_fingerprint

    @property
    def source(self) -> str:
        return self.prepared.source

    @property
    def date_range(self) -> dict[str, tuple[str, str]]:
        """First and last sample date (YYYY-MM-DD) per split."""
        return {stage: self.prepared.date_range(stage) for stage in STAGES}

    def labels(self, stage: str) -> np.ndarray:
        """float32 labels of the stage's samples, in dataset order."""
        return self.prepared.labels(stage)

    def dates(self, stage: str) -> pd.DatetimeIndex:
        """End date of each of the stage's samples, in dataset order."""
        return self.prepared.dates(stage)

    def volatility(self, stage: str) -> np.ndarray:
        """[N, 2] float64: realized volatility (annualised) of daily log returns over 5 and 20 days from
        the raw Close, unscaled, at each sample's end date, in dataset order."""
        return self.prepared.volatility(stage)

    def summary(self) -> dict[str, object]:
        return self.prepared.summary()

    def frame(self) -> pd.DataFrame:
        return self.prepared.frame()
