"""`TierDataModule`: the prepared tier (see `prepared.py`) served to Lightning as window datasets.

Keyword names equal `training.config.DataConfig`'s fields, so `TierDataModule(**asdict(cfg.data))` works.
The train loader shuffles with a generator seeded from `torch.initial_seed()`, i.e. from the run's
`seed_everything(seed)`; val and test keep date order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from datamodules.prepared import DataSettings, Prepared, prepare
from datamodules.sources import DataError
from datamodules.splits import STAGES
from datamodules.windows import WindowDataset


class TierDataModule(pl.LightningDataModule):
    def __init__(
        self, tier: str = "a20", path: str | None = None, input_size: int = 80, horizon: int = 1,
        threshold: float = 0.01, train_frac: float = 0.70, val_frac: float = 0.15, test_frac: float = 0.15,
        embargo: int = 5, batch_size: int = 64, cache_dir: str | None = None, num_workers: int = 0,
    ):
        super().__init__()
        self.settings = DataSettings(
            tier=tier, path=None if path is None else str(path), input_size=input_size, horizon=horizon,
            threshold=threshold, train_frac=train_frac, val_frac=val_frac, test_frac=test_frac,
            embargo=embargo, cache_dir=None if cache_dir is None else str(cache_dir),
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._prepared: Prepared | None = None
        self._datasets: dict[str, WindowDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Build everything once (all stages); later calls return at once. Bad input raises `DataError`."""
        if self._prepared is not None:
            return
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise DataError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        prepared = prepare(self.settings)
        self._datasets = {
            name: WindowDataset(prepared.x, prepared.y, prepared.ends[name], self.settings.input_size)
            for name in STAGES
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
            raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        return self._datasets[stage]

    # -- loaders ------------------------------------------------------------------------------------------

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(torch.initial_seed()) if shuffle else None
        return DataLoader(self.dataset(stage), batch_size=self.batch_size, shuffle=shuffle, drop_last=False,
                          generator=generator, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
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
