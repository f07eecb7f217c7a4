"""The fixed time a training run spends outside `fit`: data setup, bootstrap, baselines, plots, artifacts,
MLflow. One run, three sections:

1. Three `train(cfg, progress=False, plots=False, log_checkpoint=False)` runs (as an HPO trial runs) and
   one standalone run (plots and checkpoint) of a tiny a20 config in one process: wall time,
   `fit_seconds`, overhead = wall - fit. Run 1 starts cold (empty feature cache, first use of
   sklearn/matplotlib/MLflow in the process); runs 2 and 3 show what every later trial pays.
2. The overhead's parts, timed from outside with `time.perf_counter` on the same config in the same process
   (warm, like runs 2 and 3; median of `--repeats`): building the datamodule (feature cache hit, and cold
   with an empty cache), the model, predicting val, the baselines (fit once per prepared data), `evaluate`
   (block bootstrap, calibration, metrics), the two figures, logging them, a run's open/params/config/close,
   the checkpoint artifact. Share = part / the median overhead of runs 2 and 3; what the parts leave is
   "unattributed" (Lightning's Trainer set-up and tear-down around fit, seeding, torch.load of the
   checkpoint, ...).
3. Run 1's one-off costs: whether data was prepared again (the feature cache's files, build_datamodule
   cold vs cache hit), the first call on a fresh sqlite tracking store, and the rest (first use of
   modules in the process).

    python -m bench.trial_overhead [--epochs 2] [--repeats 3] [--threads 1]

Runs in a temporary directory with its own MLflow sqlite store (MLFLOW_TRACKING_URI) and feature cache
(DIRECTION_CACHE_DIR); never ./mlflow.db. Imports only public functions: `train`, `build_datamodule`,
`build_model`, `models.baselines.scores`, `evaluate`, `figures`, `predict_probs`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def tiny_config(epochs: int):
    """tests/conftest.py's `tiny_config`: embedded a20 data, input size 16, hidden 16 x 1 layer."""
    from training.config import RunConfig

    return RunConfig().override({
        "data.tier": "a20", "data.input_size": 16, "data.batch_size": 256,
        "model.name": "itransformer", "model.hidden_size": 16, "model.n_layers": 1, "model.n_heads": 2,
        "model.patch_len": 4, "model.stride": 4,
        "train.max_epochs": epochs, "train.patience": epochs, "train.accelerator": "cpu",
    })


def timed(fn, repeats: int = 1):
    """(median seconds over `repeats` calls, the last result)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timings per part; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--tiny", action="store_true", help="1 epoch, 2 runs, 1 timing per part")
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.repeats = 1, 1
    n_runs = 2 if args.tiny else 4

    work = Path(tempfile.mkdtemp(prefix="trial-overhead-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["DIRECTION_CACHE_DIR"] = str(work / "cache")
    warnings.filterwarnings("ignore")

    start = time.perf_counter()
    import mlflow
    import torch

    from models import baselines as baseline_set
    from models.intervals import Setting
    from training.evaluate import evaluate, figures, predict_probs
    from training.train import build_datamodule, build_model, train
    imports = time.perf_counter() - start
    cwd = os.getcwd()
    os.chdir(work)  # ./mlruns artifacts land in the temp dir (after the imports: the repo may be sys.path's '')
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])

    cfg = tiny_config(args.epochs)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mlflow {mlflow.__version__}; "
          f"temp dir {work}; imports of torch/mlflow/training took {imports:.2f} s (not counted below)")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the start; other work may run beside")

    # 1. three runs
    runs = []
    for i in range(1, n_runs + 1):
        trial = i < n_runs  # the last run is a standalone training run: plots and checkpoint
        wall, result = timed(lambda t=trial: train(cfg, progress=False, plots=not t, log_checkpoint=not t))
        runs.append((wall, result.fit_seconds, result.epochs))
        kind = "trial" if trial else "standalone"
        print(f"  run {i} done ({kind}): wall {wall:.2f} s, fit {result.fit_seconds:.2f} s")
    cache_files = sorted(p.name for p in (work / "cache").glob("*")) if (work / "cache").exists() else []

    print(f"\n## train(cfg, progress=False), tiny a20 config ({args.epochs} epochs max), same process")
    print(f"{'run':<5} {'wall s':>8} {'fit s':>8} {'overhead s':>11} {'overhead %':>11} {'epochs':>7}")
    for i, (wall, fit, epochs) in enumerate(runs, 1):
        print(f"{i:<5} {wall:8.2f} {fit:8.2f} {wall - fit:11.2f} {(wall - fit) / wall:11.1%} {epochs:7d}")
    reference = statistics.median([w - f for w, f, _ in runs[1:3]])

    # 2. the parts, warm, timed from outside
    parts: list[tuple[str, float]] = []
    seconds, dm = timed(lambda: build_datamodule(cfg), args.repeats)
    parts.append(("build_datamodule (feature cache hit)", seconds))
    seconds, model = timed(lambda: build_model(cfg, dm.n_features), args.repeats)
    parts.append(("build_model", seconds))
    report = "val_report"
    labels = dm.labels(report)
    seconds, probs = timed(lambda: predict_probs(model, dm.eval_loader(report)), args.repeats)
    parts.append((f"predict_probs val report part ({len(labels)} windows)", seconds))
    dm.prepared.baseline_scores.clear()
    seconds, baselines = timed(lambda: baseline_set.scores(dm.prepared, report, cfg.train.seed))
    parts.append(("baselines, first trial only (4 fits on train)", seconds))
    best = baseline_set.choose(dm.prepared, cfg.train.seed)
    setting = Setting(cfg.data.horizon, dm.labels("train"), cfg.train.seed)
    seconds, ev = timed(lambda: evaluate("val", labels, dm.dates(report), probs, baselines, best_baseline=best,
                                         setting=setting), args.repeats)
    parts.append(("evaluate (block bootstrap, calibration, metrics)", seconds))
    seconds, figs = timed(lambda: figures(ev, "validation"), args.repeats)
    parts.append(("figures (ROC, calibration; standalone runs only)", seconds))
    roc, cal = figs.values()

    # its own experiment, named for this call only (set_experiment would stay active in the process)
    experiment = mlflow.get_experiment_by_name("trial-overhead")
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment("trial-overhead")

    def open_log_close():
        with mlflow.start_run(experiment_id=experiment_id, run_name="overhead-parts", tags={"kind": "bench"}):
            mlflow.log_params(cfg.to_params())
            mlflow.log_text(cfg.to_json(), "config.json")
            mlflow.log_dict({"tier": cfg.data.tier, "features": dm.feature_names}, "features.json")

    seconds, _ = timed(open_log_close, args.repeats)
    parts.append(("MLflow run open + params + config/features json + close", seconds))
    ckpt = work / "best.ckpt"
    torch.save({"state_dict": model.state_dict(), "epoch": 0}, ckpt)
    with mlflow.start_run(experiment_id=experiment_id, run_name="overhead-artifacts", tags={"kind": "bench"}):
        seconds, _ = timed(lambda: mlflow.log_figure(roc, "plots/val_roc.png"), args.repeats)
        parts.append(("mlflow.log_figure ROC (render png + store)", seconds))
        seconds, _ = timed(lambda: mlflow.log_figure(cal, "plots/val_calibration.png"), args.repeats)
        parts.append(("mlflow.log_figure calibration", seconds))
        seconds, _ = timed(lambda: mlflow.log_artifact(str(ckpt), "checkpoints"), args.repeats)
        parts.append((f"mlflow.log_artifact checkpoint ({ckpt.stat().st_size / 1024:.0f} KiB)", seconds))

    print(f"\n## overhead parts (warm, median of {args.repeats}), against a trial's overhead (median of runs 2-3: "
          f"{reference:.2f} s); the baselines, figures and checkpoint are not paid by later trials")
    print(f"{'part':<58} {'seconds':>8} {'ratio':>7}")
    for name, s in parts:
        print(f"{name:<58} {s:8.3f} {s / reference:7.1%}")

    # 3. what run 1 paid once: data prepared again? a fresh tracking store
    os.environ["DIRECTION_CACHE_DIR"] = str(work / "cache-cold")
    cold, _ = timed(lambda: build_datamodule(cfg))
    warm = next(s for n, s in parts if n.startswith("build_datamodule"))
    fresh = f"sqlite:///{work / 'fresh.db'}"
    store, _ = timed(lambda: mlflow.MlflowClient(tracking_uri=fresh).search_experiments())
    extra = (runs[0][0] - runs[0][1]) - (runs[1][0] - runs[1][1])
    print("\n## run 1's one-off costs")
    print(f"feature cache files after the 3 runs: {len(cache_files)} {cache_files}")
    print(f"{'run 1 overhead minus run 2 overhead':<58} {extra:8.3f}")
    print(f"{'  build_datamodule cold (empty feature cache)':<58} {cold:8.3f}   (cache hit: {warm:.3f})")
    print(f"{'  first call on a fresh sqlite tracking store (schema)':<58} {store:8.3f}")
    print(f"{'  rest (first use of sklearn/matplotlib/MLflow modules ...)':<58} {extra - cold - store:8.3f}")
    os.chdir(cwd)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
