"""Command-line flags shared by `python -m training` and `python -m hpo`, mapped onto `RunConfig`.

Precedence: defaults < `--use-best-from SRC` < explicit flags < `--set section.field=value`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from datamodules.sources import DataError
from models.losses import NonFiniteLossError
from training.config import ConfigError, RunConfig
from training.registry import resolve_config

# flag -> config key. Values stay strings until RunConfig.override parses them by the field's type;
# a flag not given (None) or given empty (MLproject's unset) leaves the field alone.
FLAGS = {
    "--model": "model.name",
    "--data-tier": "data.tier",
    "--data": "data.path",
    "--input-size": "data.input_size",
    "--horizon": "data.horizon",
    "--threshold": "data.threshold",
    "--batch-size": "data.batch_size",
    "--seed": "train.seed",
    "--max-steps": "train.max_steps",
    "--max-epochs": "train.max_epochs",
    "--patience": "train.patience",
    "--accelerator": "train.accelerator",
}


class Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one `error:` line (via `run_main`) instead of usage + message."""

    def error(self, message: str) -> None:
        raise ConfigError(message)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, key in FLAGS.items():
        parser.add_argument(flag, default=None, help=f"sets {key}")
    parser.add_argument("--use-best-from", metavar="SRC", default=None,
                        help="start from a config: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID, or a "
                             "config.json path; the flags above override it")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="any config field, e.g. --set model.hidden_size=128 (repeatable)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    if args.use_best_from:
        base = resolve_config(args.use_best_from)
    else:
        base = RunConfig.for_model(args.model or RunConfig().model.name)
    if args.use_best_from and args.model and args.model != base.model.name:
        raise ConfigError(f"--use-best-from {args.use_best_from} holds a config for {base.model.name}, "
                          f"not {args.model}")
    overrides = {key: getattr(args, flag[2:].replace("-", "_")) for flag, key in FLAGS.items()}
    overrides = {k: v for k, v in overrides.items() if v not in (None, "")}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return base.override(overrides)


def run_main(main: Callable[..., object], *args) -> None:
    """Run a command: bad input is one `error:` line on stderr and exit status 2, no traceback."""
    try:
        main(*args)
    except (DataError, ConfigError, ValueError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
