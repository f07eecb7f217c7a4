"""`python -m datamodules --data-tier TIER [--data PATH] ...`: summary of the data a run would see.

`--folds K` adds each fold's dates, samples and positive rates (train, val_select, val_report); the
train/val lines are then the last fold's. `--export out.parquet` writes the unscaled features, label and
split (train/val/test/purged) of every row (test labels left out, and no test positive rate shown:
promotion alone reads them); `--list-features TIER` prints a tier's feature names. Bad input: one `error:`
line, exit status 2.
Imports no torch/Lightning, so it answers in about a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from conventions.cli import Parser, run_main
from datamodules import tiers
from datamodules.config import DataConfig, flag_of
from datamodules.errors import DataError
from datamodules.prepared import prepare

HELP = {
    "tier": f"feature tier: {', '.join(tiers.KNOWN_TIERS)}",
    "path": "CSV/parquet OHLCV (or a processed feature table with --data-tier file); "
            "empty: the embedded S&P 500 daily data, 1999-2018",
    "input_size": "context length L in trading days",
    "horizon": "label: rise within this many days",
    "threshold": "label: rise of at least this fraction",
    "embargo": "rows dropped after each purge gap",
    "folds": "walk-forward folds K: the val span cut into K blocks, each with its own train rows and scaler",
    "window": "a fold's train rows: expanding (all before its block) or rolling (the first fold's length)",
    "batch_size": "samples per batch (training only)",
}
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Parser(prog="python -m datamodules", description=__doc__.splitlines()[0])
    for f in dataclasses.fields(DataConfig):
        if f.name == "batch_size":
            continue
        kind = str if f.name == "path" else type(f.default)
        p.add_argument(flag_of(f.name), dest=f.name, default=f.default, help=HELP.get(f.name, " "),
                       type=(lambda text: text or None) if f.name == "path" else kind)
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
        print("\n".join(tiers.feature_names(args.list_features, args.path)))
        return
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    prepared = prepare(DataConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    if args.export:
        export(prepared.frame(), args.export)
    summary = prepared.summary()
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    if args.export:
        print(f"{'export':<{width}}  {args.export} ({len(prepared.index)} rows)")


if __name__ == "__main__":
    run_main(main)
