"""Feature build time per tier on the embedded S&P 500: cache off vs cache miss (build + write) vs hit.

Run from the repository root: `python -m bench.feature_build [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from datamodules import features, sources, tiers


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="one run per cell, tier a20 only")
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats = 1
    start = time.perf_counter()
    ohlcv = sources.load_ohlcv()
    print(f"embedded data: {len(ohlcv)} rows, load + validate {time.perf_counter() - start:.3f}s; "
          f"median of {args.repeats} runs per cell")
    print(f"{'tier':<6}{'features':>9}{'cache off':>11}{'miss+write':>12}{'hit':>9}{'off/hit':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for tier in ("a20",) if args.tiny else tiers.TIERS:
            names = tiers.feature_names(tier)
            off = median_seconds(lambda names=names: features.compute_features(ohlcv, names), args.repeats)
            fresh = iter(range(args.repeats))
            miss = median_seconds(
                lambda tier=tier, fresh=fresh: tiers.build_tier(ohlcv, tier, Path(tmp) / f"{tier}-{next(fresh)}"),
                args.repeats,
            )
            cache = Path(tmp) / f"{tier}-hit"
            tiers.build_tier(ohlcv, tier, cache)
            hit = median_seconds(lambda tier=tier, cache=cache: tiers.build_tier(ohlcv, tier, cache), args.repeats)
            assert tiers.build_tier(ohlcv, tier, cache).from_cache
            print(f"{tier:<6}{len(names):>9}{off:>10.3f}s{miss:>11.3f}s{hit:>8.3f}s{off / hit:>8.1f}x")


if __name__ == "__main__":
    main()
