"""Windows of one float32 array: sample k is x[i-L+1 .. i] and y[i], with i = ends[k].

Two ways to read them, giving the same windows:

- `WindowDataset[k]`: one window as a view of the array (`Tensor.unfold`), never copied per sample; a
  `DataLoader`'s collate makes the only copy, one batch at a time (the path for loader worker processes).
- `WindowBatches`: whole batches gathered where the array lives (`Windows.on(device)`): on the CPU the
  dataset's own array, not copied; on an accelerator a copy made once (from pinned memory), so a batch is
  one `index_select` on the device and no host-device copy or sync happens per step. A window's rows are
  contiguous in a C-contiguous [N, F] array, so window j is row j of the strided view [N - L + 1, L * F]
  and a batch is whole-row copies. With a seeded generator it yields the batches of
  `DataLoader(dataset, batch_size, shuffle=True, generator=g)` in the same order, on every device.

A window holds rows <= i only; its first rows may lie before the split's start (past features).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`: itself on the CPU (no copy); to CUDA through pinned memory, without waiting."""
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


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

    def on(self, device: torch.device | str, base: torch.Tensor | None = None) -> Windows:
        """This dataset's arrays on `device`; `base`: the features already there (shared by datasets of
        the same array), else they are put there (on the CPU: used as they are)."""
        return Windows(self, torch.device(device), base)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> WindowBatches:
        return WindowBatches(self.on(device), batch_size, shuffle=shuffle, generator=generator)


class Windows:
    """A `WindowDataset`'s features, sample starts and labels on one device; `gather` builds batches there."""

    def __init__(self, dataset: WindowDataset, device: torch.device, base: torch.Tensor | None = None):
        self.device = device
        self.input_size = length = dataset.input_size
        if base is None:
            base = to_device(torch.from_numpy(dataset.base), device)
        if base.device != device or base.shape != dataset.base.shape or not base.is_contiguous():
            raise ValueError(f"base must be the dataset's [N, F] features, contiguous on {device}")
        self.base = base
        n, self.n_features = base.shape
        # row j: the window starting at row j, its L * F values contiguous in `base`
        self.rows = base.as_strided((max(n - length + 1, 0), length * self.n_features), (self.n_features, 1))
        self.starts = to_device(torch.from_numpy(dataset.ends - (length - 1)), device)
        self.labels = to_device(dataset._y, device)

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, L, F] windows and [B] labels of the samples `index` (a tensor on this device, or a slice)."""
        starts = self.starts[index]
        x = torch.index_select(self.rows, 0, starts).view(len(starts), self.input_size, self.n_features)
        return x, self.labels[index]


class WindowBatches:
    """An iterable of (x [B, L, F], y [B]) batches gathered on the windows' device; each `iter` is one pass
    (one epoch), reshuffled when `shuffle`. Nothing is drawn from `generator` before the first batch."""

    def __init__(self, windows: Windows, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.windows, self.batch_size, self.shuffle, self.generator = windows, batch_size, shuffle, generator

    @property
    def device(self) -> torch.device:
        return self.windows.device

    def __len__(self) -> int:
        return math.ceil(len(self.windows) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # The random draws of `DataLoader(dataset, batch_size, shuffle, generator)` at the same points of
        # the pass, so that a seed gives its batches and leaves the RNGs as it did: one int64 (its workers'
        # base seed; from the global RNG without a generator), RandomSampler's permutation, and a second
        # permutation that RandomSampler draws and drops when it runs out (before a last partial batch).
        n, size = len(self.windows), self.batch_size
        full = n // size * size
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        if not self.shuffle:
            for start in range(0, n, size):
                yield self.windows.gather(slice(start, start + size))
            return
        order = to_device(torch.randperm(n, generator=self.generator), self.device)  # once per epoch
        for start in range(0, full, size):
            yield self.windows.gather(order[start:start + size])
        torch.randperm(n, generator=self.generator)
        if full < n:
            yield self.windows.gather(order[full:])
