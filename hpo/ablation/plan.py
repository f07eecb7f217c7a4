"""The ablation's plan: the flags parsed into a `Plan` of cells (one config per model, input size and seed),
every one checked against the data before anything is written."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, replace

import hpo.ablation
from conventions.cli import Parser
from conventions.errors import UserError
from datamodules.config import DataConfig
from training.cli import add_run_arguments, flag_overrides, set_overrides
from training.config import FREE, ConfigError, RunConfig

MIN_INPUT_SIZE = 2


@dataclass(frozen=True)
class Cell:
    model: str
    input_size: int
    seed: int
    config: RunConfig
    key: str  # hash of the whole config (less FREE) and the data fingerprint

    @property
    def tags(self) -> dict[str, str]:
        return {"kind": "ablation-cell", "model": self.model, "input_size": str(self.input_size),
                "seed": str(self.seed), "cell_key": self.key}

    def label(self) -> str:
        return f"{self.model} L={self.input_size} seed {self.seed}"


@dataclass
class Plan:
    name: str
    models: list[str]
    input_sizes: list[int]
    seeds: dict[str, list[int]]  # per model
    bases: dict[str, RunConfig]  # per model: what every cell of it starts from
    sources: dict[str, str | None]  # per model: its --use-best-from
    fingerprint: str  # data, tier, target and splits (the same for every input size)
    cells: list[Cell] = field(default_factory=list)

    @property
    def data(self) -> DataConfig:
        return self.bases[self.models[0]].data


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m hpo.ablation", description=hpo.ablation.__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    group = parser.add_argument_group("ablation")
    group.add_argument("--input-sizes", default="60,80,120,180,220",
                       help="comma-separated context lengths in days (>= 2, no duplicates)")
    group.add_argument("--seeds", default="3", help="seeds per (model, input size): --seed, --seed+1, ...")
    group.add_argument("--name", default=None,
                       help="the ablation's parent run name (default: tier, models and a hash of their configs)")
    parser.epilog = ("--model takes a comma-separated list (default: the models of the --use-best-from sources, "
                     "else itransformer); --use-best-from takes one source per model or one for all")
    return parser


def split_list(text: str | None, what: str) -> list[str]:
    """'a, b' -> ['a', 'b']; a duplicate or an empty list is a `UserError`."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    duplicates = sorted({t for t in items if items.count(t) > 1})
    if duplicates:
        raise UserError(f"{what} lists {', '.join(duplicates)} more than once")
    return items


def parse_input_sizes(text: str) -> list[int]:
    sizes = []
    for item in split_list(text, "--input-sizes"):
        try:
            sizes.append(int(item))
        except ValueError:
            raise UserError(f"--input-sizes: {item!r} is not a whole number of days") from None
    if not sizes:
        raise UserError("--input-sizes is empty: give e.g. 60,80,120")
    if len(set(sizes)) < len(sizes):
        raise UserError(f"--input-sizes lists {', '.join(str(s) for s in sizes if sizes.count(s) > 1)} more than once")
    small = [s for s in sizes if s < MIN_INPUT_SIZE]
    if small:
        raise UserError(f"--input-sizes: {', '.join(map(str, small))} is below {MIN_INPUT_SIZE} (a context needs "
                        "at least two days)")
    return sorted(sizes)


def parse_seeds(text: str) -> int:
    try:
        n = int(str(text).strip())
    except ValueError:
        raise UserError(f"--seeds must be a whole number of seeds, got {text!r}") from None
    if n < 1:
        raise UserError(f"--seeds must be >= 1, got {n}")
    return n


def plan_from_args(args: argparse.Namespace) -> Plan:
    """Every cell's config, checked against the data, before anything is written."""
    from datamodules.prepared import prepare

    if args.input_size not in (None, ""):
        raise UserError("--input-size is what the ablation varies: give --input-sizes instead")
    sizes = parse_input_sizes(args.input_sizes)
    n_seeds = parse_seeds(args.seeds)
    models = split_list(args.model, "--model")
    sources = split_list(args.use_best_from, "--use-best-from") if args.use_best_from else []
    if models and sources and len(sources) not in (1, len(models)):
        raise UserError(f"--use-best-from gives {len(sources)} sources for {len(models)} models: give one per "
                        "model (in --model's order) or one for all")
    resolved: dict[str, RunConfig] = {}
    if sources:
        from training.registry import resolve_config  # MLflow: only when a source is given

        resolved = {s: resolve_config(s) for s in sources}
    if not models:
        models = [resolved[s].model.name for s in sources] if sources else [RunConfig().model.name]
        split_list(",".join(models), "the --use-best-from sources' models")
    overrides = _overrides(args)
    bases, source_of = {}, {}
    for i, model in enumerate(models):
        source = sources[i] if len(sources) == len(models) else (sources[0] if sources else None)
        if source is None:
            base = RunConfig.for_model(model)
        else:
            base = resolved[source]
            if base.model.name != model:
                if len(sources) == len(models):
                    raise ConfigError(f"--use-best-from {source} holds a config for {base.model.name}, not {model}")
                base = base.override({"model.name": model})  # one source for all: its settings, this backbone
        bases[model] = base.override(overrides)
        source_of[model] = source
    _check_same_data(bases)
    data = bases[models[0]].data
    check_input_sizes(data, sizes)
    fingerprint = prepare(replace(data, input_size=max(sizes))).fingerprint
    seeds = {m: [bases[m].train.seed + k for k in range(n_seeds)] for m in models}
    plan = Plan(name=args.name or _default_name(bases, fingerprint), models=models, input_sizes=sizes, seeds=seeds,
                bases=bases, sources=source_of, fingerprint=fingerprint)
    if "'" in plan.name:
        raise UserError(f"--name {plan.name!r}: a quote cannot be searched for in MLflow; choose another name")
    # input size outer: the data are prepared once per size
    plan.cells = [_cell(bases[m], m, size, seed, fingerprint) for size in sizes for m in models for seed in seeds[m]]
    return plan


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The flags given and `--set`, as config overrides; the model and the input size are the cells'."""
    per_cell = ("model.name", "data.input_size")
    for key in set_overrides(args.set):
        if key in per_cell:
            raise UserError(f"--set {key}: the ablation sets it per cell (use --model and --input-sizes)")
    return flag_overrides(args, skip=per_cell)


def _check_same_data(bases: dict[str, RunConfig]) -> None:
    """The models' data settings must agree (input size and batch size aside): the cells pair on dates."""
    first, *rest = bases
    ref = dataclasses.asdict(replace(bases[first].data, input_size=1, batch_size=1))
    for model in rest:
        other = dataclasses.asdict(replace(bases[model].data, input_size=1, batch_size=1))
        diff = [f"data.{k}: {ref[k]} for {first}, {other[k]} for {model}" for k in ref if ref[k] != other[k]]
        if diff:
            raise UserError("the models' configs use different data (" + "; ".join(diff) + "), so their cells "
                            "would not pair on dates: set it for all with the flags (e.g. --horizon, --threshold, "
                            "--data) or --set")


def check_input_sizes(data: DataConfig, sizes: list[int]) -> None:
    """Every input size must leave a training sample: a `UserError` saying how many rows are missing."""
    from datamodules.prepared import prepare

    shortest = prepare(replace(data, input_size=MIN_INPUT_SIZE))  # bad data (too many folds too) fail here
    # over walk-forward folds every fold trains: the one with the fewest training rows bounds the input size
    fold = min((shortest.fold(k) for k in range(data.folds)), key=lambda f: int((f.split == "train").sum()))
    train_rows = int((fold.split == "train").sum())
    too_long = [s for s in sizes if s > train_rows]
    if too_long:
        dates = fold.dates("train")
        longest = max(too_long)
        which = f" in the walk-forward fold with the fewest ({data.folds} folds)" if data.folds > 1 else ""
        raise UserError(
            f"input size{'s' if len(too_long) > 1 else ''} {', '.join(map(str, too_long))} "
            f"{'are' if len(too_long) > 1 else 'is'} more than the data allow: a window of L days needs L rows "
            f"before the first training sample, and tier {data.tier} on {shortest.source} leaves {train_rows} "
            f"training rows{which} ({dates[0].date()} .. {dates[-1].date()}, after the {shortest.warmup}-row "
            f"feature warm-up); {longest - train_rows} rows are missing for {longest}, so the longest input size "
            f"this data allows is {train_rows}")
    prepare(replace(data, input_size=max(sizes)))  # anything else the pipeline refuses, as its own `DataError`


def _params_key(cfg: RunConfig, drop: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in cfg.to_params().items() if k not in FREE and k not in drop}


def _digest(obj: object, n: int) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def _default_name(bases: dict[str, RunConfig], fingerprint: str) -> str:
    """Tier, models and a hash of their configs (less input size and seed) and of the data: the same
    command finds the same parent, and one with more sizes or seeds extends it."""
    key = {m: _params_key(cfg, ("data.input_size", "train.seed")) for m, cfg in bases.items()}
    tier = bases[next(iter(bases))].data.tier
    return f"ablation-{tier}-{'+'.join(bases)}-{_digest({'configs': key, 'data': fingerprint}, 8)}"


def _cell(base: RunConfig, model: str, size: int, seed: int, fingerprint: str) -> Cell:
    cfg = base.override({"data.input_size": size, "train.seed": seed}).check()
    return Cell(model, size, seed, cfg, _digest({"config": _params_key(cfg, ()), "data": fingerprint}, 16))
