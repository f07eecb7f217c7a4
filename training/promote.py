"""`python -m training.promote (--study NAME [--storage URL] | --run RUN_ID | --use-best-from SRC) --name NAME
[--alias champion] [--seeds 5] [run flags]`: the one command that reads the test split.

It retrains the chosen config (a study's best trial, chosen on val_select; a run; or any `--use-best-from`
source; flags given beside it override its data and training settings) with `--seeds` seeds (seed, seed+1, ...),
each exactly as a trial trains (early stopping on val), as `train` runs nested under one run of kind
`promotion`; with walk-forward folds (`--folds K`, or the source's K) on the last fold's layout (train: every
row before the last val block; val: that block). The source's walk-forward evidence (per fold and mean) is
logged as the config's development record (`development/*`) and carried by the version's tags. Then, once, it
scores each seed's best checkpoint and their mean-probability ensemble on test beside every baseline with
block-bootstrap intervals, fits a Platt calibrator on the ensemble's val predictions, and registers the ensemble
as a new version of the MLflow model `--name` (a pyfunc, `training.pyfunc`), moving `--alias` to it. Every input
is checked before any run is opened; registering is the last step, so bad input leaves no run RUNNING and no
version or alias behind.

Test ledger: a promotion whose config comes from a study (or one of its trials, or an earlier promotion of
it) is recorded on the study's parent run: a tag `test_read.<promotion run id>` per read (its own key, so
promotions running at the same time never overwrite each other's record) and the metric `test_evaluations`
(the count, step = count); a warning says how often that study's test split has been read before.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from conventions.cli import Parser, optional, run_main
from conventions.errors import UserError
from datamodules import tiers
from training.cli import add_run_arguments, transferred_config

ALIAS = "champion"
DEFAULT_SEEDS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m training.promote", description=__doc__.split("\n\n")[0])
    what = parser.add_argument_group("what to promote (one of --study, --run, --use-best-from)")
    what.add_argument("--study", type=optional(str), default=None,
                      help="a study's name (its MLflow parent run): its best trial (by val_select AUROC)")
    what.add_argument("--storage", type=optional(str), default=None,
                      help="the study's Optuna storage as given to python -m hpo: picks among studies of one name")
    what.add_argument("--run", type=optional(str), default=None, help="an MLflow run id holding a run config")
    out = parser.add_argument_group("registry")
    out.add_argument("--name", required=True, help="registered model name (a new version per promotion)")
    out.add_argument("--alias", type=optional(str), default=None,
                     help=f"alias set on the new version (default {ALIAS})")
    out.add_argument("--seeds", type=optional(int), default=None,
                     help=f"seeds to retrain and ensemble (default {DEFAULT_SEEDS})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true",
                        help="Lightning's own messages too (model summaries, accelerator banners)")
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    seeds = DEFAULT_SEEDS if args.seeds is None else args.seeds
    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    from training import registry, tracking
    from training.promotion import development, heldout, ledger, register
    from training.promotion.run import promote
    from training.promotion.source import find_source

    name, alias = registry.check_model_name(args.name), registry.check_alias(args.alias or ALIAS)
    given = [flag for flag, value in (("--study", args.study), ("--run", args.run),
                                      ("--use-best-from", args.use_best_from)) if value]
    if len(given) != 1:
        raise UserError("give exactly one of --study NAME, --run RUN_ID, --use-best-from SRC"
                        + (f" (got {', '.join(given)})" if given else ""))
    if args.storage and not args.study:
        raise UserError("--storage picks a study: it goes with --study")
    tracking.experiment_id()  # a tracking store that cannot be used fails here, before anything is read
    source = find_source(study=args.study, storage=args.storage, run=args.run, use_best_from=args.use_best_from)
    cfg = transferred_config(args, source.uri, source.config)
    if cfg.data.tier == tiers.FILE_TIER:
        raise UserError("a model on tier 'file' cannot be promoted: the registered model builds its features "
                        "from OHLCV; promote a config of tier a20, a50 or a200")
    from datamodules.prepared import prepare
    from training.threads import apply_default_threads

    apply_default_threads()
    prepared = prepare(cfg.data)  # bad data (too many --folds too) fails here, before anything is written
    heldout.check(source, prepared)  # on the whole data: the last fold's val ends where a one-split val does
    record = development.read(source)
    looks = ledger.ledger(source.study_run_id)
    if looks:
        print(f"warning: the test split of study {source.study!r} has been read {len(looks)} time(s) before "
              f"(promotion runs {', '.join(looks)}); each extra look makes the test number less held-out",
              file=sys.stderr)
    holder = registry.alias_holder(name, alias)
    register.check_may_register(name)  # a model someone else owns refuses before any seed trains
    if not args.verbose:  # third-party banners and model summaries are logged at INFO
        for logger in ("pytorch_lightning", "lightning", "lightning_fabric"):
            logging.getLogger(logger).setLevel(logging.WARNING)
    promotion = promote(cfg, prepared, source, name=name, alias=alias, seeds=seeds, holder=holder,
                        progress=not args.quiet, development=record)
    promotion.report(print)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    run_main(main)
