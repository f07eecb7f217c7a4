"""Training throughput, every figure measured in this one run:

1. DirectionClassifier in Lightning vs a bare PyTorch loop: same network, same windows, same steps.
2. vs neuralforecast's own `fit` of the same-size iTransformer forecaster on the same feature series.
3. share of a `train(cfg)` run's wall time spent in MLflow logging (temp sqlite store).
4. samples/s of each architecture at a20/L=80 and a200/L=220, without and with `feature_proj=32`.

    python -m bench.train_throughput [--steps 40]
    python -m bench.train_throughput --tiny   # tiny networks, a20 at L=16, 2 steps: a check that it runs
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings

import mlflow
import numpy as np
import pandas as pd
import torch

from models.registry import available
from training.config import RunConfig
from training.train import build_datamodule, build_model, build_trainer, train

warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
             accelerator="cpu", devices=1, num_sanity_val_steps=0, limit_val_batches=0)  # neuralforecast's
TINY = {"data.input_size": 16, "model.hidden_size": 16, "model.n_layers": 1, "model.n_heads": 2,
        "model.patch_len": 4, "model.stride": 4}


def bare_loop(model, dm, steps: int) -> float:
    """samples/s of the plain PyTorch loop the Lightning loop replaces: the same DataLoader, AdamW,
    clipping and loss."""
    opt = model.configure_optimizers()
    model.train()
    seen, start, batch = 0, time.perf_counter(), dm.config.batch_size
    while seen < steps * batch:
        for x, y in dm.train_dataloader():
            loss = model.loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            seen += len(y)
            if seen >= steps * batch:
                break
    return seen / (time.perf_counter() - start)


def lightning_loop(cfg: RunConfig, model, dm, steps: int) -> float:
    """samples/s of the project's Trainer (`build_trainer`), without validation."""
    trainer = build_trainer(cfg.override({"train.max_steps": steps}), dm, validate=False)
    start = time.perf_counter()
    trainer.fit(model, train_dataloaders=dm.train_dataloader())
    return steps * cfg.data.batch_size / (time.perf_counter() - start)


def neuralforecast_fit(cfg: RunConfig, dm, steps: int) -> float:
    """windows/s of neuralforecast's own iTransformer.fit: the F train-split features as F series."""
    from neuralforecast import NeuralForecast
    from neuralforecast.models import iTransformer

    frame = dm.frame()
    frame = frame[frame["split"] == "train"][dm.feature_names]
    long = frame.reset_index(names="ds").melt(id_vars="ds", var_name="unique_id", value_name="y")
    m = cfg.model
    forecaster = iTransformer(
        h=1, input_size=cfg.data.input_size, n_series=dm.n_features, hidden_size=m.hidden_size,
        n_heads=m.n_heads, e_layers=m.n_layers, d_ff=m.ff_mult * m.hidden_size, dropout=m.dropout,
        max_steps=steps, batch_size=dm.n_features, windows_batch_size=cfg.data.batch_size,
        val_check_steps=10**6, scaler_type="identity", **QUIET,
    )
    nf = NeuralForecast(models=[forecaster], freq="B")
    start = time.perf_counter()
    nf.fit(long)
    return steps * cfg.data.batch_size / (time.perf_counter() - start)


def section_loops(steps: int, tiny: dict) -> None:
    cfg = RunConfig.for_model("itransformer").override({"data.input_size": 80, "train.accelerator": "cpu", **tiny})
    dm = build_datamodule(cfg)
    torch.manual_seed(0)
    bare = bare_loop(build_model(cfg, dm.n_features), dm, steps)
    torch.manual_seed(0)
    light = lightning_loop(cfg, build_model(cfg, dm.n_features), dm, steps)
    nf = neuralforecast_fit(cfg, dm, steps)
    print(f"\n## itransformer a20 L={cfg.data.input_size}, batch {cfg.data.batch_size}, {steps} steps (samples/s)")
    print(f"bare PyTorch loop        {bare:8.0f}")
    print(f"Lightning (ours)         {light:8.0f}   ratio ours/bare {light / bare:.2f}")
    print(f"neuralforecast fit       {nf:8.0f}   ratio ours/neuralforecast {light / nf:.2f}")


def section_mlflow(epochs: int, tiny: dict) -> None:
    cfg = RunConfig.for_model("itransformer").override({
        "data.input_size": 80, "train.max_epochs": epochs, "train.patience": 10, "train.accelerator": "cpu", **tiny})
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            start = time.perf_counter()
            result = train(cfg, progress=False)
            wall = time.perf_counter() - start
        finally:
            os.chdir(cwd)
    print(f"\n## MLflow share of one train() run ({result.epochs} epochs, itransformer a20 L={cfg.data.input_size})")
    print(f"wall {wall:.1f} s, fit {result.fit_seconds:.1f} s, per-epoch MLflow logging "
          f"{result.mlflow_seconds * 1000:.0f} ms = {result.mlflow_seconds / wall:.2%} of wall; "
          f"everything outside fit (data, params, eval, plots, artifacts) {1 - result.fit_seconds / wall:.1%}")


def section_architectures(steps: int, tiny: dict) -> None:
    print(f"\n## samples/s per architecture (Lightning loop, batch 32, {steps} steps)")
    print(f"{'model':14s} {'tier':5s} {'L':>4s} {'proj':>5s} {'params':>10s} {'samples/s':>10s}")
    for tier, length in (("a20", 80),) if tiny else (("a20", 80), ("a200", 220)):
        for name in available():
            for proj in (0, 32):
                cfg = RunConfig.for_model(name).override({
                    "data.tier": tier, "data.input_size": length, "data.batch_size": 32,
                    "model.feature_proj": proj, "train.accelerator": "cpu", **tiny})
                dm = build_datamodule(cfg)
                model = build_model(cfg, dm.n_features)
                n = steps if (name, tier, proj) != ("patchtst", "a200", 0) else 3  # ~2 samples/s
                rate = lightning_loop(cfg, model, dm, n)
                count = sum(p.numel() for p in model.parameters())
                print(f"{name:14s} {tier:5s} {cfg.data.input_size:4d} {proj:5d} {count:10,d} {rate:10.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tiny", action="store_true", help="tiny networks at L=16, a20, 2 steps, 1 epoch")
    args = parser.parse_args(argv)
    tiny = TINY if args.tiny else {}
    steps = 2 if args.tiny else args.steps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    section_loops(steps, tiny)
    section_mlflow(1 if args.tiny else 3, tiny)
    section_architectures(steps if args.tiny else max(args.steps // 4, 5), tiny)


if __name__ == "__main__":
    main()
