"""Command-line flags shared by `python -m training` and `python -m hpo`, mapped onto `RunConfig`.

Precedence: the backbone's defaults < `--use-best-from SRC` < explicit flags < `--set section.field=value`.
"""

from __future__ import annotations

import argparse
import re

from datamodules import tiers
from datamodules.config import WINDOWS, flag_of
from models.registry import available
from training.config import ACCELERATORS, PRECISIONS, ConfigError, RunConfig

DEFAULTS = RunConfig()
# One `--set` value may hold several KEY=VALUE separated by spaces (MLproject passes its one `set` parameter
# as one value): a space splits only before a new KEY=, so a value may hold spaces; "" sets nothing.
NEXT_KEY = re.compile(r"\s+(?=\w+\.\w+=)")
# flag -> (config key, choices). Values stay strings until RunConfig.override parses them by the field's
# type; a flag not given (None) or given empty (MLproject's unset) leaves the field alone.
FLAGS: dict[str, tuple[str, tuple | None]] = {
    "--model": ("model.name", tuple(available())),
    **{flag_of(f): (f"data.{f}", {"tier": tiers.KNOWN_TIERS, "window": WINDOWS}.get(f))
       for f in ("tier", "path", "input_size", "horizon", "threshold", "batch_size", "folds", "window")},
    "--seed": ("train.seed", None),
    "--max-steps": ("train.max_steps", None),
    "--max-epochs": ("train.max_epochs", None),
    "--patience": ("train.patience", None),
    "--accelerator": ("train.accelerator", ACCELERATORS),
    "--precision": ("train.precision", PRECISIONS),
}


def _default(key: str) -> object:
    section, _, name = key.partition(".")
    value = getattr(getattr(DEFAULTS, section), name)
    return "the embedded S&P 500" if value is None else value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run config (flags given override --use-best-from)")
    for flag, (key, choices) in FLAGS.items():
        what = f"one of {', '.join(choices)}; " if choices else ""
        group.add_argument(flag, default=None, metavar=key.split(".")[1].upper(),
                           help=f"{what}sets {key} (default: {_default(key)}"
                                + (", or the model's own" if key.startswith("model.") else "") + ")")
    group.add_argument("--use-best-from", metavar="SRC", default=None,
                       help="start from a config: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID, or a "
                            "config.json path; the flags above override it")
    group.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       help="any config field, e.g. --set model.hidden_size=128 (repeatable; one value may "
                            "hold several pairs separated by spaces)")


def set_overrides(items: list[str]) -> dict[str, str]:
    """The `--set` values as config overrides {KEY: VALUE}."""
    overrides = {}
    for item in (pair for text in items for pair in NEXT_KEY.split(text.strip()) if pair):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def flag_overrides(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """The run flags given (FLAGS but the config keys `skip`; "" is MLproject's "not given") and then
    `--set`, as config overrides."""
    overrides = {key: getattr(args, flag[2:].replace("-", "_")) for flag, (key, _) in FLAGS.items()
                 if key not in skip}
    return {**{k: v for k, v in overrides.items() if v not in (None, "")}, **set_overrides(args.set)}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's config from the flags, checked: a `UserError` for any mistake, before anything runs."""
    if args.use_best_from:
        from training.registry import resolve_config  # MLflow: only when a source is given

        return transferred_config(args, args.use_best_from, resolve_config(args.use_best_from))
    return RunConfig.for_model(args.model or DEFAULTS.model.name).override(flag_overrides(args)).check()


def transferred_config(args: argparse.Namespace, source: str, base: RunConfig) -> RunConfig:
    """`base` (the config read from `source`) with the flags' overrides, checked; prints the transfer
    report."""
    if args.model and args.model != base.model.name:
        raise ConfigError(f"--use-best-from {source} holds a config for {base.model.name}, not {args.model}")
    overrides = flag_overrides(args)
    cfg = base.override(overrides).check()
    print(transfer_report(source, cfg, overrides, base))
    return cfg


def transfer_report(source: str, cfg: RunConfig, overrides: dict[str, object], base: RunConfig) -> str:
    """Which fields of a transferred config came from flags (`--set` included; with the source's value where
    the flag changed it, e.g. another number of folds) and which from the source (`base`)."""
    params, before = cfg.to_params(), base.to_params()
    sections: dict[str, list[str]] = {}
    for key, value in params.items():
        if key not in overrides:
            section, _, name = key.partition(".")
            sections.setdefault(section, []).append(f"{name}={value}")
    flags = ", ".join(f"{k}={params[k]}" + (f" (the source: {before[k]})" if str(before[k]) != str(params[k]) else "")
                      for k in overrides) or "none"
    kept = ", ".join(f"{s}.{{{', '.join(v)}}}" for s, v in sections.items()) or "none"
    return f"--use-best-from {source}: from flags: {flags}; from the source: {kept}"
