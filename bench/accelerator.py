"""Accelerator throughput, every figure measured in this one run:

1. the data path alone: samples/s of the DataModule's train batches (`WindowBatches`, device-resident on an
   accelerator) against the previous per-sample `DataLoader(WindowDataset, shuffle=True)` path (plus, on an
   accelerator, its pinned copy to the device); ratio new/old (target on the CPU: >= 0.95).
2. training: per architecture, tier (a20/L80, a200/L220, a200/L220 with feature_proj=32), batch and
   precision, samples/s of the project's Lightning path (TierDataModule + DirectionClassifier + Trainer
   as `training.train` builds it) and of a bare on-device loop on the same network (features on the
   device, windows gathered there by `base[start[:, None] + arange(L)]`, AdamW, clipping, autocast), their
   ratio, and the mean GPU utilisation of each (nvidia-smi / torch.cuda.utilization; "n/a" on the CPU).

    python -m bench.accelerator                      # the GPU table on CUDA; a small table on the CPU
    python -m bench.accelerator --tiers a20,a200,a200p --batches 64,1024 --precisions 32-true,bf16-mixed

On the CPU the defaults are small (tiny networks, a20 only, few steps: a few minutes on 2 cores);
`--tiers` asks for more; `--tiny` is the smallest run (seconds: a check that the bench runs).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import subprocess
import threading
import time
import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from datamodules.datamodule import TierDataModule
from models.registry import available
from training.config import RunConfig
from training.train import build_model, build_trainer

warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
TIERS = {"a20": ("a20", 80, 0), "a200": ("a200", 220, 0), "a200p": ("a200", 220, 32)}
TINY = {"model.hidden_size": 16, "model.n_layers": 1, "model.n_heads": 2, "model.ff_mult": 1}
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Utilisation:
    """Mean GPU utilisation (%) while the `with` block runs, sampled every 0.1 s; None on the CPU or when
    neither `torch.cuda.utilization` (pynvml) nor nvidia-smi answers."""

    def __init__(self, device: torch.device):
        self.device, self.samples, self._stop = device, [], threading.Event()
        self.read = self._reader() if device.type == "cuda" else None

    def _reader(self):
        try:
            torch.cuda.utilization(self.device)
            return lambda: torch.cuda.utilization(self.device)
        except Exception:  # pynvml missing: nvidia-smi
            smi = shutil.which("nvidia-smi")
            if smi is None:
                return None
            index = self.device.index or 0
            cmd = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", f"--id={index}"]
            return lambda: float(subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip())

    def _loop(self):
        while not self._stop.wait(0.1):
            try:
                self.samples.append(float(self.read()))
            except Exception:
                return

    def __enter__(self):
        if self.read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.read is not None:
            self._thread.join()

    @property
    def mean(self) -> str:
        return f"{np.mean(self.samples):.0f}%" if self.samples else "n/a"


# -- 1. the data path --------------------------------------------------------------------------------------

def old_loader(dm: TierDataModule, device: torch.device) -> DataLoader:
    """The previous path: per-sample `__getitem__`, collate into a new batch (pinned for CUDA)."""
    return DataLoader(dm.dataset("train"), batch_size=dm.config.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(torch.initial_seed()),
                      pin_memory=device.type == "cuda")


def data_rate(loader, device: torch.device, min_seconds: float) -> float:
    """samples/s of whole epochs of `loader`, each batch on `device` (copied there when it is not)."""
    seen, start = 0, time.perf_counter()
    while True:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            seen += len(y)
        sync(device)
        if time.perf_counter() - start >= min_seconds:
            return seen / (time.perf_counter() - start)


def section_data(tiers: list[str], batches: list[int], device: torch.device, seconds: float) -> None:
    print(f"\n## 1. data path alone, train split, whole epochs, batches on {device} (samples/s)")
    print(f"{'tier':6s} {'L':>4s} {'batch':>6s} {'old DataLoader':>15s} {'new DataModule':>15s} {'new/old':>8s}")
    for key in tiers:
        tier, length, _ = TIERS[key]
        if key == "a200p":
            continue  # same data as a200
        for batch in batches:
            dm = TierDataModule(RunConfig().override({"data.tier": tier, "data.input_size": length,
                                                      "data.batch_size": batch}).data, device=device)
            dm.setup()
            torch.manual_seed(0)
            old = data_rate(old_loader(dm, device), device, seconds)
            torch.manual_seed(0)
            new = data_rate(dm.train_dataloader(), device, seconds)
            print(f"{tier:6s} {length:4d} {batch:6d} {old:15,.0f} {new:15,.0f} {new / old:8.2f}")


# -- 2. training -----------------------------------------------------------------------------------------

class Clock(pl.Callback):
    """Counts samples and time from the first batch after `warmup` steps to the end of fit."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device, self.start, self.seen, self.seconds = warmup, device, None, 0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            sync(self.device)
            self.start = time.perf_counter()
        if self.start is not None:
            self.seen += len(batch[1])

    def on_train_end(self, trainer, pl_module):
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def lightning_rate(cfg: RunConfig, device: torch.device, steps: int, warmup: int) -> tuple[float, str, int]:
    """The project's path: TierDataModule (device from the Trainer) + DirectionClassifier + the Trainer of
    `training.train.build_trainer` (precision, clipping), without validation."""
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    dm = TierDataModule(cfg.data)
    dm.setup()
    model = build_model(cfg, dm.n_features)
    clock = Clock(warmup, device)
    timed = cfg.override({"train.max_steps": warmup + steps, "train.accelerator": device.type})
    trainer = build_trainer(timed, dm, callbacks=(clock,), validate=False)
    with Utilisation(device) as util:
        trainer.fit(model, datamodule=dm)
    return clock.seen / clock.seconds, util.mean, sum(p.numel() for p in model.parameters())


def bare_rate(cfg: RunConfig, device: torch.device, steps: int, warmup: int) -> tuple[float, str]:
    """A plain loop on the same network: the features on the device, windows gathered there."""
    pl.seed_everything(cfg.train.seed, verbose=False)
    dm = TierDataModule(cfg.data)
    dm.setup()
    ds = dm.dataset("train")
    base = torch.from_numpy(ds.base).to(device)
    starts = torch.from_numpy(ds.ends - (ds.input_size - 1)).to(device)
    labels = torch.from_numpy(ds.labels).to(device)
    offsets = torch.arange(ds.input_size, device=device)
    model = build_model(cfg, dm.n_features).to(device)
    opt = model.configure_optimizers()
    dtype = AUTOCAST.get(cfg.train.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "16-mixed")
    model.train()
    batch, n = cfg.data.batch_size, len(starts)
    step, seen, start = 0, 0, None
    with Utilisation(device) as util:
        while step < warmup + steps:
            order = torch.randperm(n, device=device)
            for k in range(0, n, batch):
                if step == warmup:
                    sync(device)
                    start = time.perf_counter()
                idx = order[k:k + batch]
                x, y = base[starts[idx][:, None] + offsets], labels[idx]
                with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                    loss = model.loss(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                scaler.step(opt)
                scaler.update()
                seen += len(idx) if step >= warmup else 0
                step += 1
                if step == warmup + steps:
                    break
        sync(device)
    return seen / (time.perf_counter() - start), util.mean


def section_training(args, device: torch.device) -> None:
    print(f"\n## 2. training samples/s on {device}: Lightning path vs bare on-device loop, {args.steps} steps "
          f"after {args.warmup} warm-up, matmul precision {args.matmul_precision}"
          + (", tiny networks (hidden 16, 1 layer)" if args.tiny else ", the backbones' default shapes"))
    print(f"{'model':13s} {'tier':6s} {'L':>4s} {'proj':>4s} {'batch':>5s} {'precision':>10s} {'params':>10s} "
          f"{'lightning':>10s} {'bare':>10s} {'ratio':>6s} {'util L':>7s} {'util bare':>9s}")
    torch.set_float32_matmul_precision(args.matmul_precision)
    for name in args.models:
        for key in args.tiers:
            tier, length, proj = TIERS[key]
            for batch in args.batches:
                for precision in args.precisions:
                    cfg = RunConfig.for_model(name).override({
                        "data.tier": tier, "data.input_size": length, "data.batch_size": batch,
                        "model.feature_proj": proj, "train.precision": precision,
                        "train.accelerator": device.type, "train.matmul_precision": args.matmul_precision,
                        **(TINY if args.tiny else {})}).check()
                    light, util_light, params = lightning_rate(cfg, device, args.steps, args.warmup)
                    bare, util_bare = bare_rate(cfg, device, args.steps, args.warmup)
                    print(f"{name:13s} {tier:6s} {length:4d} {proj:4d} {batch:5d} {precision:>10s} {params:10,d} "
                          f"{light:10,.0f} {bare:10,.0f} {light / bare:6.2f} {util_light:>7s} {util_bare:>9s}",
                          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=",".join(available()))
    parser.add_argument("--tiers", default=None, help="of a20, a200, a200p (a200 with feature_proj=32); "
                        "default: all on an accelerator, a20 on the CPU")
    parser.add_argument("--batches", default="64,1024")
    parser.add_argument("--precisions", default="32-true,bf16-mixed")
    parser.add_argument("--matmul-precision", default="highest", choices=("highest", "high"))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 50 GPU, 6 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 10 GPU, 2 CPU)")
    parser.add_argument("--data-seconds", type=float, default=None, help="per data-path measurement")
    parser.add_argument("--tiny", action=argparse.BooleanOptionalAction, default=None,
                        help="tiny networks (default on the CPU); given, also the smallest run: one model, a20, "
                             "batch 64, 32-true, 2 steps after 1, 0.05 s per data-path measurement")
    args = parser.parse_args(argv)
    if args.tiny:
        args.models, args.tiers, args.batches, args.precisions = available()[0], "a20", "64", "32-true"
        args.steps, args.warmup, args.data_seconds = 2, 1, 0.05
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    args.models = args.models.split(",")
    args.tiers = (args.tiers or ("a20" if cpu else "a20,a200,a200p")).split(",")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.precisions = args.precisions.split(",")
    args.steps = args.steps or (6 if cpu else 50)
    args.warmup = args.warmup if args.warmup is not None else (2 if cpu else 10)
    args.tiny = cpu if args.tiny is None else args.tiny
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(f"torch {torch.__version__}, pytorch_lightning {pl.__version__}, {torch.get_num_threads()} threads, "
          f"{device} ({gpu})")
    section_data(args.tiers, args.batches, device, args.data_seconds or (3.0 if cpu else 2.0))
    if device.type != "cpu":
        section_data(args.tiers, args.batches, torch.device("cpu"), args.data_seconds or 3.0)
    section_training(args, device)
    print("\nratio = lightning / bare: the same network, batch, precision and clipping; util: mean GPU "
          "utilisation while each ran")


if __name__ == "__main__":
    main()
