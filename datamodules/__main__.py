"""`python -m datamodules --data-tier TIER [--data PATH] ...`: summary of the data a run would see.

`--export out.parquet` writes the unscaled features, label and split (train/val/test/purged) of every
row; `--list-features TIER` prints a tier's feature names. Bad input: one `error:` line, exit status 2.
Imports no torch/Lightning, so it answers in about a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from datamodules import tiers
from datamodules.prepared import DataSettings, prepare
from datamodules.sources import DataError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise DataError(message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = DataSettings()
    p = _Parser(prog="python -m datamodules", description=__doc__.splitlines()[0])
    p.add_argument("--data-tier", default=d.tier, help=f"one of {', '.join(tiers.KNOWN_TIERS)} (default a20)")
    p.add_argument("--data", default=None, metavar="PATH", type=lambda text: text or None,
                   help="CSV/parquet OHLCV (or a processed feature table with --data-tier file); "
                        "default (or empty): the embedded S&P 500 daily data, 1999-2018")
    p.add_argument("--horizon", type=int, default=d.horizon)
    p.add_argument("--threshold", type=float, default=d.threshold)
    p.add_argument("--input-size", type=int, default=d.input_size, help="context length L")
    p.add_argument("--train-frac", type=float, default=d.train_frac)
    p.add_argument("--val-frac", type=float, default=d.val_frac)
    p.add_argument("--test-frac", type=float, default=d.test_frac)
    p.add_argument("--embargo", type=int, default=d.embargo, help="rows dropped after each purge gap")
    p.add_argument("--export", default=None, metavar="PATH.parquet")
    p.add_argument("--list-features", default=None, metavar="TIER", help="print a tier's feature names")
    return p.parse_args(argv)


def export(frame, path: str) -> None:
    """Write under a temporary name, then rename: no partial file on failure."""
    target = Path(path)
    if target.suffix.lower() != ".parquet":
        raise DataError(f"--export writes parquet: give a path ending in .parquet, not {path!r}")
    if not target.parent.is_dir():
        raise DataError(f"cannot write {path}: directory {target.parent} does not exist")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp)
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {path}: {err.strerror or err}") from None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list_features:
        print("\n".join(tiers.feature_names(args.list_features, args.data)))
        return
    prepared = prepare(DataSettings(
        tier=args.data_tier, path=args.data, input_size=args.input_size, horizon=args.horizon,
        threshold=args.threshold, train_frac=args.train_frac, val_frac=args.val_frac,
        test_frac=args.test_frac, embargo=args.embargo,
    ))
    if args.export:
        export(prepared.frame(), args.export)
    summary = prepared.summary()
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    if args.export:
        print(f"{'export':<{width}}  {args.export} ({len(prepared.index)} rows)")


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
