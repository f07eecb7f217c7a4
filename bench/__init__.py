"""Benchmarks (`python -m bench.NAME`): each prints ratios measured in one run and has a `--tiny` mode
that tests/test_bench.py runs."""

import argparse


def data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data flags of the benchmarks that score the embedded data: horizons, tier, input size, threshold."""
    parser.add_argument("--horizons", default="1,5")
    parser.add_argument("--tier", default="a20")
    parser.add_argument("--input-size", type=int, default=80)
    parser.add_argument("--threshold", type=float, default=0.01)
