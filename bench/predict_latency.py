"""Prediction latency of a promoted model: one day and 1,000 days, through the pyfunc in-process and through
`mlflow models serve` (REST on 127.0.0.1), in one run, as ratios.

"One day" is the shortest input that gives one prediction (the tier's warm-up plus `input_size` rows, the
last date scored); "1,000 days" adds 999 rows, so 1,000 dates are scored. Each call validates the OHLCV,
builds the tier's features of the whole input, scales, windows, runs every seed's network and compares the
features with the train split's (`training.shift`); the REST call
adds JSON encoding, HTTP and MLflow's schema enforcement. The pyfunc's own split (features vs networks) is
timed on the unwrapped model. Medians over `--requests` calls per case after one warm-up call; the server
gets the same torch thread count (OMP_NUM_THREADS) as this process.

    python -m bench.predict_latency [--model-uri models:/NAME@ALIAS] [--requests 20] [--threads 1]

Without `--model-uri` it first promotes a tiny a20 config (input size 16, 2 seeds, 1 epoch) in a temporary
directory with its own MLflow sqlite store and feature cache (never ./mlflow.db), removed at the end; with
it, the model is read from the current tracking store (MLFLOW_TRACKING_URI or ./mlflow.db).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

MAX_REQUESTS = 200  # the REST loop is bounded whatever --requests says
DAYS = (1, 1000)


def tiny_promotion(work: Path, seeds: int) -> str:
    from conventions.cli import run_main
    from training import promote
    from training.config import RunConfig
    from training.train import train

    cfg = RunConfig().override({
        "data.tier": "a20", "data.input_size": 16, "data.batch_size": 256,
        "model.name": "itransformer", "model.hidden_size": 16, "model.n_layers": 1, "model.n_heads": 2,
        "train.max_epochs": 1, "train.patience": 1, "train.accelerator": "cpu",
    })
    run = train(cfg, progress=False, plots=False, log_checkpoint=False)
    run_main(promote.main, ["--run", run.run_id, "--name", "latency", "--seeds", str(seeds), "--quiet"])
    return "models:/latency@champion"


def median_seconds(fn, n: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default=None, help="default: promote a tiny model in a temporary store")
    parser.add_argument("--requests", type=int, default=20, help=f"timed calls per case (at most {MAX_REQUESTS})")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--tiny", action="store_true", help="1 call per case; the promoted model has 1 seed")
    args = parser.parse_args(argv)
    if args.tiny:
        args.requests = 1
    n = max(1, min(args.requests, MAX_REQUESTS))

    work = Path(tempfile.mkdtemp(prefix="predict-latency-"))
    if args.model_uri is None:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(work / 'mlflow.db').resolve()}"
        os.environ["DIRECTION_CACHE_DIR"] = str(work / "cache")
    elif "MLFLOW_TRACKING_URI" not in os.environ:  # the model lives in this directory's store
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path('mlflow.db').resolve()}"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        import mlflow
        import torch

        from datamodules import sources, tiers

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # the store the server reads too
        if args.threads:
            torch.set_num_threads(args.threads)
        uri = args.model_uri or tiny_promotion(work, 1 if args.tiny else 2)
        model = mlflow.pyfunc.load_model(uri)
        inner = model.unwrap_python_model()
        data = inner.config.data
        raw = sources.load_ohlcv(None)  # the embedded S&P 500: its last rows are the inputs
        warmup = tiers.drop_warmup(tiers.build_tier(raw, data.tier, save=False).features)[1]
        ohlcv = raw.reset_index().rename(columns={"date": "Date"})
        inputs = {d: ohlcv.iloc[-(warmup + data.input_size - 1 + d):] for d in DAYS}
        for d, frame in inputs.items():
            assert len(model.predict(frame)) == d, (d, len(model.predict(frame)))

        py = {d: median_seconds(lambda f=f: model.predict(f), n) for d, f in inputs.items()}
        feats = {d: median_seconds(lambda f=f: inner.windows(f), n) for d, f in inputs.items()}
        x = {d: inner.scale(inner.windows(f)[1].to_numpy(dtype="float64")) for d, f in inputs.items()}
        nets = {d: median_seconds(lambda d=d: inner.raw_probabilities(x[d]), n) for d in DAYS}

        bodies = {}
        for d, frame in inputs.items():
            split = json.loads(frame.assign(Date=frame["Date"].dt.strftime("%Y-%m-%d")).to_json(orient="split",
                                                                                             index=False))
            bodies[d] = json.dumps({"dataframe_split": split}).encode()

        def call(url: str, body: bytes) -> list:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as r:
                return json.load(r)["predictions"]

        from tests.servers import model_server

        with model_server(uri, work, threads=args.threads or os.cpu_count()) as served:
            url, startup = served.url, served.start_seconds
            for d in DAYS:
                served = call(url, bodies[d])
                assert len(served) == d and served[-1]["date"] == str(ohlcv["Date"].iloc[-1].date())
            rest = {d: median_seconds(lambda d=d: call(url, bodies[d]), n) for d in DAYS}
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)

    print(f"model {uri} ({inner.config.model.name} {data.tier} L{data.input_size}, {len(inner.networks)} seeds, "
          f"warm-up {warmup} rows); torch threads {torch.get_num_threads()}; median of {n} calls per case")
    print("seconds per call; pyfunc = features (validation, tier features) + networks (all seeds) + the rest "
          "(scaling, the shift check, MLflow's schema enforcement and wrapper; by difference of medians, so within "
          "noise when small or negative)")
    print(f"{'':>10} {'pyfunc':>8} {'features':>9} {'networks':>9} {'rest':>8} {'REST':>8} {'REST/pyfunc':>12}")
    for d in DAYS:
        other = py[d] - feats[d] - nets[d]
        print(f"{d:>5} days {py[d]:>8.4f} {feats[d]:>9.4f} {nets[d]:>9.4f} {other:>8.4f} {rest[d]:>8.4f} "
              f"{rest[d] / py[d]:>11.2f}x")
    print(f"1,000 days / 1 day: pyfunc {py[1000] / py[1]:.2f}x, REST {rest[1000] / rest[1]:.2f}x; per day at 1,000: "
          f"pyfunc {py[1000] / 1000 * 1e3:.3f} ms, REST {rest[1000] / 1000 * 1e3:.3f} ms; "
          f"features are {feats[1] / py[1]:.0%} of a one-day pyfunc call; server start {startup:.1f} s")


if __name__ == "__main__":
    main()
