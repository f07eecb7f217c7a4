"""`WindowDataset`: sample k is the window x[i-L+1 .. i] and y[i], with i = ends[k].

Windows are views of one float32 array (`Tensor.unfold`), never copied per sample; the DataLoader's
collate makes the only copy, one batch at a time. A window holds rows <= i only; its first rows may lie
before the split's start (past features).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class WindowDataset(Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, ends: np.ndarray, input_size: int):
        """x: [N, F] float32 features (kept as is when already float32 C-contiguous, else copied once),
        y: [N] labels, ends: the row of each sample (each >= input_size - 1), input_size: L."""
        self.base = np.ascontiguousarray(x, dtype=np.float32)
        if self.base.ndim != 2 or len(y) != len(self.base):
            raise ValueError(f"x must be [N, F] and y [N]; got {self.base.shape} and {np.shape(y)}")
        self.input_size = int(input_size)
        self.ends = np.asarray(ends, dtype=np.int64)
        if self.input_size < 1 or (len(self.ends) and (
                self.ends.min() < self.input_size - 1 or self.ends.max() >= len(self.base))):
            raise ValueError(f"sample rows must lie in [{self.input_size - 1}, {len(self.base) - 1}] "
                             f"for input size {self.input_size}")
        self.labels = np.asarray(y, dtype=np.float32)[self.ends]
        # [N - L + 1, L, F]: window j covers rows j .. j + L - 1, as strides over self.base
        self._windows = torch.from_numpy(self.base).unfold(0, self.input_size, 1).transpose(1, 2)
        self._y = torch.from_numpy(self.labels)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._windows[self.ends[k] - self.input_size + 1], self._y[k]
