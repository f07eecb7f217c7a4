"""`python -m hpo.ablation --model A,B --data-tier TIER --input-sizes 60,80,120 --seeds 3 [training flags]`:
a context-length ablation whose every number carries its uncertainty.

One MLflow parent run (tag `kind=ablation`) and one nested training run per (model, input size, seed)
(`kind=ablation-cell`, tags `model`, `input_size`, `seed`, `cell_key`): a normal run with its baselines and
`predictions/val.parquet`. Each model's config is `--use-best-from` (one source per model, or one for all:
its config with `model.name` replaced) or the backbone's defaults, then the flags and `--set`; only the
input size and the seed vary (seeds `--seed`, `--seed`+1, ...). Val and test cover the same dates for
every input size, so the cells pair on dates.

Rerunning the command resumes: the parent is found by its name (deterministic: tier, models and a hash
of their configs and the data, or `--name`), and a cell whose run under it FINISHED with the same
`cell_key` (a hash of the cell's whole config and the data fingerprint) is not run again. Adding input
sizes or seeds to the same command reuses the cells already run.

On the parent: `ablation/table.csv` and `ablation/table.md` (one row per model and input size: seeds,
mean val AUROC over the seeds on the report part of val, its block-bootstrap interval over dates and
seeds, the best baseline on the same resamples and the paired interval of the difference) and
`ablation/plot.png`; the summary names the best input size per model and says whether the paired
interval against the runner-up excludes 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from datamodules.config import DataConfig
from datamodules.errors import Parser, UserError, run_main
from training.cli import FLAGS, add_run_arguments
from training.config import ConfigError, RunConfig

N_BOOT = 1000
LEVEL = 0.95
CI_SEED = 0  # the one index matrix of the summary: the same resamples for every row
REPORT = "val_report"  # training.train.REPORT: the part of val a run's numbers are measured on
MIN_INPUT_SIZE = 2
# what a cell's key leaves out: where the data file lies (its content is in the fingerprint) and the device
FREE = ("data.path", "train.accelerator")


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


# -- the command line -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m hpo.ablation", description=__doc__.split("\n\n")[0])
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


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    """The flags given (not --model, --input-size) and `--set`, as config overrides."""
    overrides = {key: getattr(args, flag[2:].replace("-", "_")) for flag, (key, _) in FLAGS.items()
                 if key not in ("model.name", "data.input_size")}
    overrides = {k: v for k, v in overrides.items() if v not in (None, "")}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key.strip() in ("model.name", "data.input_size"):
            raise UserError(f"--set {key.strip()}: the ablation sets it per cell (use --model and --input-sizes)")
        overrides[key.strip()] = value.strip()
    return overrides


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

    shortest = prepare(replace(data, input_size=MIN_INPUT_SIZE))  # bad data fail here, as `DataError`
    train_rows = int((shortest.split == "train").sum())
    too_long = [s for s in sizes if s > train_rows]
    if too_long:
        dates = shortest.dates("train")
        longest = max(too_long)
        raise UserError(
            f"input size{'s' if len(too_long) > 1 else ''} {', '.join(map(str, too_long))} "
            f"{'are' if len(too_long) > 1 else 'is'} more than the data allow: a window of L days needs L rows "
            f"before the first training sample, and tier {data.tier} on {shortest.source} leaves {train_rows} "
            f"training rows ({dates[0].date()} .. {dates[-1].date()}, after the {shortest.warmup}-row feature "
            f"warm-up); {longest - train_rows} rows are missing for {longest}, so the longest input size this "
            f"data allows is {train_rows}")
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


# -- running ------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    parent_run_id: str
    ran: int
    reused: int
    failed: list[tuple[Cell, str]]
    summary: Summary


def run_ablation(plan: Plan, *, echo: Callable[[str], None] = print) -> Outcome:
    """Find or create the parent, run the cells it lacks, write the table, the plot and the summary."""
    from mlflow.tracking import MlflowClient

    from training import tracking
    from training.train import train

    client = MlflowClient()
    exp = tracking.experiment_id()
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)  # `mlflow run`'s run: adopted as the parent, or a pointer
    parent_id = find_parent(plan.name, exp)
    if parent_id is None:
        parent_id = launcher or client.create_run(exp, run_name=plan.name).info.run_id
        client.update_run(parent_id, name=plan.name)
        tracking.log_batch(parent_id, params={"ablation.fingerprint": plan.fingerprint},
                           tags={"kind": "ablation", "ablation_name": plan.name})
        echo(f"ablation {plan.name!r}: new parent run {parent_id}")
    else:
        client.update_run(parent_id, status="RUNNING")
        if launcher is not None:
            tracking.log_batch(launcher, tags={"kind": "ablation-session", "ablation_name": plan.name,
                                               "mlflow.parentRunId": parent_id})
        echo(f"ablation {plan.name!r}: resuming parent run {parent_id}")
    tracking.log_batch(parent_id, tags={
        "tier": plan.data.tier, "models": ",".join(plan.models), "input_sizes": ",".join(map(str, plan.input_sizes)),
        "seeds": json.dumps(plan.seeds), "sources": json.dumps(plan.sources),
        "mlflow.note.content": "Context-length ablation; rerun the same `python -m hpo.ablation` command to "
                               "resume it. Table: `ablation/table.md`."})
    for model, cfg in plan.bases.items():
        client.log_text(parent_id, cfg.to_json(), f"ablation/configs/{model}.json")

    done = finished_cells(parent_id, exp)
    ran, reused, failed = 0, 0, []
    with tracking.ending(parent_id):
        for i, cell in enumerate(plan.cells, 1):
            where = f"cell {i}/{len(plan.cells)} {cell.label()}"
            if cell.key in done:
                reused += 1
                echo(f"{where}: done before (run {done[cell.key]})")
                continue
            start = time.perf_counter()
            try:
                result = train(cell.config, tags={**cell.tags, "ablation_name": plan.name},
                               parent_run_id=parent_id, progress=False)
            except UserError as err:  # e.g. a non-finite loss: the run is FAILED, the others go on
                failed.append((cell, str(err)))
                echo(f"{where}: FAILED: {' '.join(str(err).split())}")
                continue
            done[cell.key] = result.run_id
            ran += 1
            m = result.metrics
            echo(f"{where}: val/auroc {m['best/val/auroc']:.4f} [{m['best/val/auroc_ci_low']:.4f}, "
                 f"{m['best/val/auroc_ci_high']:.4f}], best epoch {result.best_epoch} of {result.epochs} "
                 f"({time.perf_counter() - start:.0f} s, run {result.run_id})")
        summary = summarise(plan, {c: done[c.key] for c in plan.cells if c.key in done})
        log_summary(parent_id, plan, summary)
    return Outcome(parent_id, ran, reused, failed, summary)


def find_parent(name: str, experiment: str) -> str | None:
    """The earliest ablation parent of this name in the experiment."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([experiment], f"tags.kind = 'ablation' and tags.ablation_name = '{name}'",
                                      order_by=["attributes.start_time ASC"], max_results=1)
    return runs[0].info.run_id if runs else None


def finished_cells(parent_id: str, experiment: str) -> dict[str, str]:
    """cell_key -> run id of the FINISHED cells under the parent (the latest where one ran twice)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found, token = {}, None
    query = (f"tags.mlflow.parentRunId = '{parent_id}' and tags.kind = 'ablation-cell' "
             "and attributes.status = 'FINISHED'")
    while True:
        page = client.search_runs([experiment], query, order_by=["attributes.start_time ASC"], max_results=1000,
                                  page_token=token)
        found |= {r.data.tags["cell_key"]: r.info.run_id for r in page if "cell_key" in r.data.tags}
        token = page.token
        if not token:
            return found


# -- the summary --------------------------------------------------------------------------------------------

@dataclass
class Summary:
    table: pd.DataFrame  # one row per (model, input size)
    lines: list[str]  # the verdict per model
    best: dict[str, dict[str, object]]  # model -> best input size, runner-up, paired interval, distinguishable
    dates: tuple[str, str]
    n_dates: int
    block: int
    n_boot: int

    def markdown(self, name: str) -> str:
        return table_markdown(self, name)


COLUMNS = ["model", "input_size", "seeds", "val_auroc", "val_auroc_ci_low", "val_auroc_ci_high", "seed_aurocs",
           "best_baseline", "baseline_auroc", "baseline_ci_low", "baseline_ci_high", "diff_ci_low", "diff_ci_high",
           "vs_baseline", "run_ids"]


def report_predictions(run_id: str) -> pd.DataFrame:
    """The report part of a cell's `predictions/val.parquet`, indexed by date: label, probability."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_parquet(MlflowClient().download_artifacts(run_id, "predictions/val.parquet", tmp))
    frame = frame[frame["part"] == "report"] if "part" in frame else frame
    return frame.set_index(pd.DatetimeIndex(frame["date"]))[["label", "probability"]]


def _interval(values: np.ndarray) -> tuple[float, float]:
    if np.isnan(values).all():
        return math.nan, math.nan
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "beats it"
    if high < 0:
        return "is worse"
    return "is not distinguishable from it"


def summarise(plan: Plan, runs: dict[Cell, str], *, n_boot: int = N_BOOT,
              predictions: Callable[[str], pd.DataFrame] = report_predictions) -> Summary:
    """The table from the cells' report-part predictions: one block index matrix over the dates shared by
    every cell; per row the seeds' AUROCs averaged on each resample, the baselines (fit on train at the
    row's input size, with the row's seeds) on the same resamples."""
    from datamodules.prepared import prepare
    from models.intervals import block_bootstrap_indices, block_length, rank_auroc, resampled_auroc
    from training.evaluate import baseline_scores

    frames = {cell: predictions(run_id) for cell, run_id in runs.items()}
    if not frames:
        empty = pd.DataFrame(columns=COLUMNS)
        return Summary(empty, ["no cell has finished"], {}, ("", ""), 0, 0, n_boot)
    dates = sorted(set.intersection(*(set(f.index) for f in frames.values())))
    dates = pd.DatetimeIndex(dates)
    labels = None
    for cell, frame in frames.items():
        cell_labels = frame["label"].reindex(dates).to_numpy(dtype=float)
        if labels is None:
            labels = cell_labels
        elif not np.array_equal(labels, cell_labels):
            raise RuntimeError(f"labels of {cell.label()} differ from the other cells' on the same dates")
    block = block_length(labels, plan.data.horizon)
    idx = block_bootstrap_indices(len(dates), block, n_boot, np.random.default_rng(CI_SEED))

    baselines: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for size, seed in sorted({(c.input_size, c.seed) for c in frames}):  # size first: one prepare per size
        data = prepare(replace(plan.data, input_size=size))
        scores = baseline_scores(data, REPORT, seed)
        where = pd.Series(np.arange(len(data.dates(REPORT))), index=data.dates(REPORT)).reindex(dates)
        if where.isna().any():
            raise RuntimeError(f"the baselines at input size {size} miss {int(where.isna().sum())} report dates")
        baselines[size, seed] = {name: s[where.to_numpy(dtype=int)] for name, s in scores.items()}

    rows, samples = [], {}
    for model in plan.models:
        for size in plan.input_sizes:
            cells = [c for c in frames if c.model == model and c.input_size == size]
            cells.sort(key=lambda c: c.seed)
            row: dict[str, object] = {"model": model, "input_size": size, "seeds": len(cells)}
            if not cells:
                rows.append(row)
                continue
            probs = [frames[c]["probability"].reindex(dates).to_numpy(dtype=float) for c in cells]
            points = [float(rank_auroc(labels, p)) for p in probs]
            model_samples = np.mean([resampled_auroc(labels, p, idx) for p in probs], axis=0)
            base_points, base_samples = {}, {}
            for name in baselines[size, cells[0].seed]:
                scores = [baselines[size, c.seed][name] for c in cells]
                base_points[name] = float(np.mean([rank_auroc(labels, s) for s in scores]))
                base_samples[name] = np.mean([resampled_auroc(labels, s, idx) for s in scores], axis=0)
            best = max(base_points, key=lambda n: -math.inf if math.isnan(base_points[n]) else base_points[n])
            diff = _interval(model_samples - base_samples[best])
            samples[model, size] = model_samples
            row |= {
                "val_auroc": float(np.mean(points)), **dict(zip(("val_auroc_ci_low", "val_auroc_ci_high"),
                                                                _interval(model_samples), strict=True)),
                "seed_aurocs": " ".join(f"{p:.4f}" for p in points), "best_baseline": best,
                "baseline_auroc": base_points[best],
                **dict(zip(("baseline_ci_low", "baseline_ci_high"), _interval(base_samples[best]), strict=True)),
                "diff_ci_low": diff[0], "diff_ci_high": diff[1],
                "vs_baseline": "beats" if diff[0] > 0 else "worse" if diff[1] < 0 else "not distinguishable",
                "run_ids": " ".join(runs[c] for c in cells),
            }
            rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)

    lines, best_of = [], {}
    for model in plan.models:
        done = table[(table["model"] == model) & (table["seeds"] > 0)].sort_values(
            ["val_auroc", "input_size"], ascending=[False, True])
        if done.empty:
            lines.append(f"{model}: no cell finished")
            continue
        top = done.iloc[0]
        size = int(top["input_size"])
        info: dict[str, object] = {"input_size": size, "val_auroc": float(top["val_auroc"])}
        seeds = int(top["seeds"])
        line = f"{model}: best at {size}d (val AUROC {top['val_auroc']:.3f}, {seeds} seed{'s' if seeds > 1 else ''})"
        if len(done) > 1:
            second = done.iloc[1]
            other = int(second["input_size"])
            low, high = _interval(samples[model, size] - samples[model, other])
            info |= {"runner_up": other, "runner_up_val_auroc": float(second["val_auroc"]),
                     "diff": float(top["val_auroc"] - second["val_auroc"]), "diff_ci_low": low, "diff_ci_high": high,
                     "distinguishable": bool(low > 0)}
            line += (f"; runner-up {other}d ({second['val_auroc']:.3f}): difference "
                     f"{top['val_auroc'] - second['val_auroc']:+.3f}, paired 95% CI [{low:+.3f}, {high:+.3f}]: "
                     + ("distinguishable (the interval excludes 0)" if low > 0
                        else "NOT distinguishable (the interval contains 0)"))
        else:
            line += "; the only input size with a finished cell"
        line += (f"; against the best baseline ({top['best_baseline']} {top['baseline_auroc']:.3f}) it "
                 f"{_verdict(top['diff_ci_low'], top['diff_ci_high'])} "
                 f"(paired 95% CI [{top['diff_ci_low']:+.3f}, {top['diff_ci_high']:+.3f}])")
        best_of[model] = info
        lines.append(line)
    first, last = (str(dates[0].date()), str(dates[-1].date()))
    return Summary(table, lines, best_of, (first, last), len(dates), block, n_boot)


def _cell_text(value: float, low: float, high: float) -> str:
    return "-" if pd.isna(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def table_markdown(summary: Summary, name: str) -> str:
    t = summary.table
    sizes = sorted(t["input_size"].unique())
    out = [
        f"# Context-length ablation `{name}`",
        "",
        f"Val AUROC on the report part of val: {summary.n_dates} dates ({summary.dates[0]} .. {summary.dates[1]}), "
        "the same for every cell (the epoch was chosen on the other part). A row is the mean over its seeds' "
        f"runs. Intervals: {LEVEL:.0%} stationary block bootstrap over the dates (block length {summary.block}, "
        f"{summary.n_boot} resamples, one index matrix for every row), the seeds' AUROCs averaged on each "
        "resample, so they cover both date sampling and seed variation. The best baseline is the one with the "
        "highest AUROC at that input size (fit on train, same dates); `model - baseline` is the paired interval "
        "of the difference. An interval that contains 0 is not a finding.",
        "",
        "## Summary",
        "",
        *[f"- {line}" for line in summary.lines],
        "",
        "## Val AUROC by input size (mean over seeds [95% CI])",
        "",
        "| model | " + " | ".join(f"{s}d" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for model in dict.fromkeys(t["model"]):
        cells = []
        for size in sizes:
            row = t[(t["model"] == model) & (t["input_size"] == size)].iloc[0]
            cells.append(_cell_text(row["val_auroc"], row["val_auroc_ci_low"], row["val_auroc_ci_high"]))
        out.append(f"| {model} | " + " | ".join(cells) + " |")
    baseline_cells = []
    for size in sizes:
        rows = t[(t["input_size"] == size) & (t["seeds"] > 0)]
        if rows.empty:
            baseline_cells.append("-")
            continue
        row = rows.iloc[0]
        baseline_cells.append(f"{row['best_baseline']} "
                              + _cell_text(row["baseline_auroc"], row["baseline_ci_low"], row["baseline_ci_high"]))
    out += ["| best baseline | " + " | ".join(baseline_cells) + " |", "", "## All rows", "",
            "| model | input size | seeds | val AUROC | 95% CI | per seed | best baseline | baseline AUROC | "
            "model - baseline 95% CI | vs baseline |",
            "|---|---:|---:|---:|---|---|---|---:|---|---|"]
    for _, r in t.iterrows():
        if not r["seeds"]:
            out.append(f"| {r['model']} | {r['input_size']} | 0 | - | - | - | - | - | - | - |")
            continue
        out.append(f"| {r['model']} | {r['input_size']} | {r['seeds']} | {r['val_auroc']:.3f} | "
                   f"[{r['val_auroc_ci_low']:.3f}, {r['val_auroc_ci_high']:.3f}] | {r['seed_aurocs']} | "
                   f"{r['best_baseline']} | {r['baseline_auroc']:.3f} | "
                   f"[{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}] | {r['vs_baseline']} |")
    return "\n".join(out) + "\n"


def plot(summary: Summary, name: str):
    """Val AUROC against input size per model, intervals as bars, the best baseline as a band."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    t = summary.table[summary.table["seeds"] > 0]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    sizes = sorted(t["input_size"].unique())
    if sizes:
        base = t.sort_values("baseline_auroc", ascending=False).drop_duplicates("input_size").sort_values("input_size")
        ax.fill_between(base["input_size"], base["baseline_ci_low"], base["baseline_ci_high"], color="grey",
                        alpha=0.2, step=None, label="best baseline, 95% CI")
        ax.plot(base["input_size"], base["baseline_auroc"], color="grey", linestyle="--", linewidth=1)
        for x, y, who in zip(base["input_size"], base["baseline_auroc"], base["best_baseline"], strict=True):
            ax.annotate(who, (x, y), textcoords="offset points", xytext=(0, 4), fontsize=7, color="grey",
                        ha="center")
    models = list(dict.fromkeys(t["model"]))
    span = (max(sizes) - min(sizes)) if len(sizes) > 1 else 1
    for k, model in enumerate(models):
        rows = t[t["model"] == model].sort_values("input_size")
        shift = (k - (len(models) - 1) / 2) * span * 0.012  # side by side, not on top of each other
        x = rows["input_size"].to_numpy(dtype=float) + shift
        y = rows["val_auroc"].to_numpy(dtype=float)
        err = np.vstack([y - rows["val_auroc_ci_low"].to_numpy(dtype=float),
                         rows["val_auroc_ci_high"].to_numpy(dtype=float) - y])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=model)
    ax.axhline(0.5, color="black", linewidth=0.6, linestyle=":")
    ax.set(xlabel="input size (days)", ylabel="val AUROC (report part)", xticks=sizes)
    ax.set_title(f"{name}\nmean over seeds, {LEVEL:.0%} block-bootstrap intervals over dates and seeds", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def log_summary(parent_id: str, plan: Plan, summary: Summary) -> None:
    from mlflow.tracking import MlflowClient

    from training import tracking

    client = MlflowClient()
    client.log_text(parent_id, summary.table.to_csv(index=False), "ablation/table.csv")
    markdown = summary.markdown(plan.name)
    client.log_text(parent_id, markdown, "ablation/table.md")
    client.log_figure(parent_id, plot(summary, plan.name), "ablation/plot.png")
    metrics = {}
    for _, r in summary.table[summary.table["seeds"] > 0].iterrows():
        prefix = f"{r['model']}/L{r['input_size']}/val"
        metrics |= {f"{prefix}/auroc": r["val_auroc"], f"{prefix}/auroc_ci_low": r["val_auroc_ci_low"],
                    f"{prefix}/auroc_ci_high": r["val_auroc_ci_high"]}
    tags = {f"best_input_size.{m}": str(b["input_size"]) for m, b in summary.best.items()}
    tags |= {f"distinguishable.{m}": str(b["distinguishable"]).lower() for m, b in summary.best.items()
             if "distinguishable" in b}
    note = markdown.split("## All rows")[0]
    tags["mlflow.note.content"] = note[:7000]
    tracking.log_batch(parent_id, metrics, params={"ci.method": "stationary-block", "ci.level": LEVEL,
                                                   "ci.n_boot": summary.n_boot, "ci.seed": CI_SEED}, tags=tags)
    tracking.log_batch(parent_id, tags={"ci.block_length": str(summary.block)})


# -- main ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per cell's predictions
    args = build_parser().parse_args(argv)
    plan = plan_from_args(args)
    import mlflow

    from training import tracking
    from training.threads import apply_default_threads

    apply_default_threads()
    tracking.experiment_id()  # a tracking store that cannot be used fails before anything runs
    print(f"ablation {plan.name!r}: {len(plan.models)} models x {len(plan.input_sizes)} input sizes x "
          f"{len(next(iter(plan.seeds.values())))} seeds = {len(plan.cells)} cells")
    for model in plan.models:
        print(f"  {model}: {plan.sources[model] or 'backbone defaults'}, seeds {plan.seeds[model]}")
    out = run_ablation(plan)
    s = out.summary
    print(f"\n{out.ran} cells run now, {out.reused} done before, {len(out.failed)} failed")
    print(f"val AUROC on {s.n_dates} report dates ({s.dates[0]} .. {s.dates[1]}), mean over seeds "
          f"[{LEVEL:.0%} CI over dates and seeds]:")
    print(s.markdown(plan.name).split("## Val AUROC by input size (mean over seeds [95% CI])\n\n")[1]
          .split("\n\n## All rows")[0])
    for line in s.lines:
        print(f"- {line}")
    print(f"MLflow: parent run {out.parent_run_id} (kind=ablation) with ablation/table.md, table.csv, plot.png; "
          f"tracking URI {mlflow.get_tracking_uri()}")
    if out.failed:
        raise UserError(f"{len(out.failed)} of {len(plan.cells)} cells failed ("
                        + "; ".join(f"{c.label()}: {e}" for c, e in out.failed[:3])
                        + ("; ..." if len(out.failed) > 3 else "") + "): the table holds the others")


if __name__ == "__main__":
    run_main(main)
