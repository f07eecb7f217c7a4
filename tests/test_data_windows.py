"""WindowDataset: each sample is the naive slice, as a view of the one base array."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.windows import WindowDataset


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 3)).astype(np.float32), (rng.random(50) > 0.5).astype(np.float32)


@pytest.mark.parametrize("input_size", [1, 5, 30])
def test_windows_are_the_naive_slices_and_share_memory(arrays, input_size):
    x, y = arrays
    ends = np.arange(input_size - 1, 50, 3)
    ds = WindowDataset(x, y, ends, input_size)
    assert ds.base is x  # float32 C-contiguous input is used as is
    assert len(ds) == len(ends)
    for k, i in enumerate(ends):
        window, label = ds[k]
        assert window.dtype == torch.float32 and window.shape == (input_size, 3)
        assert label.dtype == torch.float32 and label.shape == ()
        np.testing.assert_array_equal(window.numpy(), x[i - input_size + 1 : i + 1])
        assert np.shares_memory(window.numpy(), x)
        assert float(label) == y[i]
    np.testing.assert_array_equal(ds.labels, y[ends])


def test_no_window_sees_rows_after_its_end(arrays):
    x, y = arrays
    ds = WindowDataset(x, y, np.arange(9, 50), 10)
    marked = x.copy()
    for k in range(len(ds)):
        window = ds[k][0].numpy()
        i = ds.ends[k]
        np.testing.assert_array_equal(window[-1], marked[i])
        x[i + 1 :] = np.nan  # poison the future: the window must not change
        assert np.isfinite(ds[k][0].numpy()).all()
        x[:] = marked


def test_loader_batches_equal_stacked_windows(arrays):
    x, y = arrays
    ends = np.arange(7, 50)
    ds = WindowDataset(x, y, ends, 8)
    xb, yb = next(iter(DataLoader(ds, batch_size=16)))
    assert xb.shape == (16, 8, 3) and yb.shape == (16,)
    np.testing.assert_array_equal(xb.numpy(), np.stack([x[i - 7 : i + 1] for i in ends[:16]]))


def test_out_of_range_ends_are_rejected(arrays):
    x, y = arrays
    with pytest.raises(ValueError, match="sample rows must lie in"):
        WindowDataset(x, y, np.arange(3, 50), 5)
    with pytest.raises(ValueError, match="sample rows must lie in"):
        WindowDataset(x, y, np.array([50]), 5)
