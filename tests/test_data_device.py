"""Device-resident batches (`WindowBatches`): the per-sample DataLoader's windows, labels and order for a
seed, built with device ops only (checked on the meta device, where any host read raises)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.config import DataConfig
from datamodules.datamodule import TierDataModule
from datamodules.windows import WindowBatches, WindowDataset


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 3)).astype(np.float32)
    y = (rng.random(70) > 0.5).astype(np.float32)
    return WindowDataset(x, y, np.arange(9, 70, 2), 10)


def epochs(loader, n=3):
    return [[(x.clone(), y.clone()) for x, y in loader] for _ in range(n)]


def assert_same_batches(got, expected):
    assert [len(e) for e in got] == [len(e) for e in expected]
    for epoch_got, epoch_expected in zip(got, expected, strict=True):
        for (x, y), (x_ref, y_ref) in zip(epoch_got, epoch_expected, strict=True):
            assert x.shape == x_ref.shape and x.dtype == x_ref.dtype == torch.float32
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


@pytest.mark.parametrize("batch_size", [1, 8, 31, 64])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_equal_the_per_sample_dataloader_in_order(dataset, batch_size, shuffle):
    def generator():
        return torch.Generator().manual_seed(1234) if shuffle else None

    reference = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator())
    batches = dataset.batches(batch_size, shuffle=shuffle, generator=generator(), device="cpu")
    assert len(batches) == len(reference)
    iter(batches)  # Lightning calls iter() once to check a loader: it must draw nothing
    assert_same_batches(epochs(batches), epochs(reference))  # epochs reshuffle alike


def test_cpu_batches_read_the_array_itself(dataset):
    windows = dataset.on("cpu")
    assert np.shares_memory(windows.base.numpy(), dataset.base)  # no copy of the features
    x, y = windows.gather(torch.tensor([3, 0]))
    np.testing.assert_array_equal(x.numpy(), np.stack([dataset[3][0].numpy(), dataset[0][0].numpy()]))
    np.testing.assert_array_equal(y.numpy(), dataset.labels[[3, 0]])


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_are_built_on_the_device_without_host_reads(dataset, shuffle):
    """Meta tensors have no data: any host read or sync (`.item()`, `bool()`, a copy back) would raise."""
    batches = dataset.batches(8, shuffle=shuffle, generator=torch.Generator().manual_seed(0), device="meta")
    out = list(batches)
    assert len(out) == len(batches) == 4
    for x, y in out:
        assert x.device.type == "meta" and y.device.type == "meta"
        assert x.shape[1:] == (10, 3) and x.dtype == torch.float32
    assert sum(len(y) for _, y in out) == len(dataset)


def test_shared_features_must_match(dataset):
    with pytest.raises(ValueError, match="contiguous on cpu"):
        dataset.on("cpu", torch.zeros(5, 3))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        WindowBatches(dataset.on("cpu"), 0)


@pytest.fixture(scope="module")
def a20(tmp_path_factory):
    dm = TierDataModule(DataConfig(input_size=40, batch_size=128), cache_dir=str(tmp_path_factory.mktemp("a20")))
    dm.setup("fit")
    return dm


def test_datamodule_train_order_follows_the_seed_as_the_dataloader_did(a20):
    torch.manual_seed(7)  # the loader's generator is seeded from torch.initial_seed()
    loader = a20.train_dataloader()
    assert isinstance(loader, WindowBatches) and loader.device == torch.device("cpu")
    reference = DataLoader(a20.dataset("train"), batch_size=128, shuffle=True,
                           generator=torch.Generator().manual_seed(7))
    assert_same_batches(epochs(loader, 2), epochs(reference, 2))
    val = DataLoader(a20.dataset("test"), batch_size=128)
    assert_same_batches(epochs(a20.test_dataloader(), 1), epochs(val, 1))


def test_datamodule_puts_the_features_on_a_device_once(a20):
    on_meta = [a20.windows(stage, "meta") for stage in ("train", "val", "test")]
    assert all(w.base is on_meta[0].base for w in on_meta) and on_meta[0].base.device.type == "meta"
    assert a20.windows("train", "meta") is on_meta[0]
    cpu = a20.windows("train", "cpu")
    assert np.shares_memory(cpu.base.numpy(), a20.dataset("train").base)  # on the CPU: not copied
    assert a20.windows("val", "cpu").base is cpu.base


def test_batch_device_follows_setting_then_trainer_then_cpu():
    dm = TierDataModule(DataConfig())
    assert dm.batch_device() == torch.device("cpu")
    dm.device = "meta"
    assert dm.batch_device() == torch.device("meta")


def test_worker_processes_get_the_per_sample_dataloader(a20):
    dm = TierDataModule(a20.config, num_workers=1)
    dm._prepared, dm._datasets = a20.prepared, a20._datasets  # the same prepared data, not rebuilt
    loader = dm.val_dataloader()
    assert isinstance(loader, DataLoader) and loader.num_workers == 1 and not loader.pin_memory
