"""Peak RSS of a TierDataModule at a200 with input size 220 vs 60, each in its own process: setup plus
one epoch of train batches. Windows are views of one float32 array, so the context length should barely
change memory; materialising every train window would cost samples x L x F x 4 bytes.

Each context runs twice: with glibc's default allocator and with a fixed mmap threshold
(MALLOC_MMAP_THRESHOLD_=1 MiB). The default raises its threshold after the first large free, so the
~11 MiB batches of L=220 are then carved from the heap, where fragmentation has added up to ~90 MiB in
some runs; with the fixed threshold the epoch costs about two batches.

Run from the repository root: `python -m bench.datamodule_memory` (`--tiny`: tier a20 at input sizes 16
and 8, the default allocator only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from datamodules import sources, tiers

TIER = "a200"
CONTEXTS = (220, 60)
ALLOCATORS = {"default malloc": {}, "mmap threshold 1 MiB": {"MALLOC_MMAP_THRESHOLD_": str(2**20)}}


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def child(tier: str, input_size: int, cache_dir: str) -> None:
    import torch

    from datamodules.config import DataConfig
    from datamodules.datamodule import TierDataModule

    torch.manual_seed(0)  # the train loader's shuffle order
    imports = maxrss_mib()
    dm = TierDataModule(DataConfig(tier=tier, input_size=input_size), cache_dir=cache_dir)
    dm.setup()
    setup = maxrss_mib()
    batches = sum(1 for _ in dm.train_dataloader())
    train = dm.dataset("train")
    print(json.dumps({
        "peak": maxrss_mib(), "imports": imports, "setup": setup, "batches": batches,
        "samples": len(train), "base_shape": list(train.base.shape), "base_mib": train.base.nbytes / 2**20,
        "cache": dm.summary()["feature_cache"],
    }))


def run_child(tier: str, input_size: int, cache_dir: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.datamodule_memory", "--child", str(input_size), "--tier", tier,
         "--cache-dir", cache_dir],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
        cwd=Path(__file__).resolve().parents[1],  # `-m bench...` from the repository root, wherever we are
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tier", default=TIER, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="tier a20 at input sizes 16 and 8, default allocator")
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.tier, args.child, args.cache_dir)
        return
    tier, contexts = ("a20", (16, 8)) if args.tiny else (TIER, CONTEXTS)
    allocators = dict(list(ALLOCATORS.items())[:1]) if args.tiny else ALLOCATORS
    with tempfile.TemporaryDirectory() as cache_dir:
        tiers.build_tier(sources.load_ohlcv(), tier, cache_dir)  # children read the cache: no build peak
        runs = {(name, L): run_child(tier, L, cache_dir, env) for name, env in allocators.items() for L in contexts}
    print(f"{'allocator':<22}{'L':>5}{'imports':>10}{'setup':>9}{'peak':>9}  (MiB, ru_maxrss)  train windows "
          "if materialised")
    for (name, L), run in runs.items():
        materialised = run["samples"] * L * run["base_shape"][1] * 4 / 2**20
        print(f"{name:<22}{L:>5}{run['imports']:>10.1f}{run['setup']:>9.1f}{run['peak']:>9.1f}"
              f"{'':>20}{materialised:8.1f} ({run['samples']} samples, {run['batches']} batches)")
    for name in allocators:
        long, short = (runs[(name, L)] for L in contexts)
        print(f"{name}: peak RSS ratio L={contexts[0]} / L={contexts[1]} = {long['peak'] / short['peak']:.3f}; "
              f"above imports: {long['peak'] - long['imports']:.1f} vs {short['peak'] - short['imports']:.1f} MiB")
    base = runs[(next(iter(allocators)), contexts[0])]
    print(f"base float32 array: {base['base_shape'][0]} x {base['base_shape'][1]} = {base['base_mib']:.2f} MiB "
          "(one array shared by train/val/test)")


if __name__ == "__main__":
    main()
