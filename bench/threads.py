"""Torch intra-op threads: seconds per training step of fixed workloads at threads = 1, 2, 4 and torch's
default, measured in one run, once on the machine as it is and once with two busy processes beside it.

    python -m bench.threads [--steps 10] [--cap 6] [--rounds 3] [--no-large]

Workloads (forward + focal loss + backward + AdamW step of the DirectionClassifier on random windows):
- the demo's shapes (`python -m hpo --demo`): itransformer, 20 features (a20), input size 32, batch 256,
  the 20k deep-narrow (hidden 16 x 8 layers) and 50k shallow-wide (hidden 64 x 1 layer) budgets' shapes;
- `python -m training`'s default shape: itransformer a20, input size 80, batch 64, hidden 64 x 2 layers;
- a larger one: itransformer, 200 features (a200), input size 80, batch 32, hidden 128 x 3 layers (~430k
  parameters), to see whether threads pay off once a step carries more work.

Every (workload, threads) cell is timed `--rounds` times (each timing: `--steps` steps or `--cap` seconds,
whichever ends first, after one warm-up step), rounds interleaved so that drift in the machine's load hits
every cell alike; the median seconds per step is reported with its ratio to threads=1 of the same
workload and condition (below 1: faster than one thread). The busy condition spawns two
`python -c "while True: pass"` processes and kills them afterwards. `training/threads.py` takes its
default from these numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from models.classifier import build_classifier


@dataclass(frozen=True)
class Workload:
    name: str
    n_features: int
    input_size: int
    batch: int
    hidden: int
    layers: int
    heads: int
    large: bool = False


WORKLOADS = (
    Workload("demo 20k deep-narrow", 20, 32, 256, 16, 8, 2),
    Workload("demo 50k shallow-wide", 20, 32, 256, 64, 1, 2),
    Workload("train default a20 L80", 20, 80, 64, 64, 2, 4),
    Workload("a200 L80 h128x3", 200, 80, 32, 128, 3, 4, large=True),
)


def make_step(w: Workload):
    torch.manual_seed(0)
    model = build_classifier("itransformer", w.n_features, w.input_size, hidden_size=w.hidden,
                             n_layers=w.layers, n_heads=w.heads, ff_mult=2, dropout=0.1)
    opt = model.configure_optimizers()
    model.train()
    x = torch.randn(w.batch, w.input_size, w.n_features)
    y = (torch.rand(w.batch) > 0.5).float()
    params = sum(p.numel() for p in model.parameters())

    def step():
        loss = model.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, params


def time_steps(step, threads: int, steps: int, cap: float) -> float:
    """Seconds per step over `steps` steps, or fewer when they pass `cap` seconds."""
    torch.set_num_threads(threads)
    step()  # warm-up at this thread count (pool resize, allocator)
    done, start = 0, time.perf_counter()
    while done < steps:
        step()
        done += 1
        if time.perf_counter() - start > cap:
            break
    return (time.perf_counter() - start) / done


def measure(workloads, steps: int, cap: float, rounds: int, counts: list[int]) -> dict[tuple[str, int], float]:
    cells = {(w.name, n): [] for w in workloads for n in counts}
    built = {w.name: make_step(w)[0] for w in workloads}
    for _ in range(rounds):
        for w in workloads:
            for n in counts:
                cells[w.name, n].append(time_steps(built[w.name], n, steps, cap))
    return {key: statistics.median(values) for key, values in cells.items()}


class Busy:
    """Two pure-Python busy loops beside the benchmark; killed (by their own handles) on exit."""

    def __init__(self, n: int = 2):
        self.n, self.procs = n, []

    def __enter__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env) for _ in range(self.n)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def loadavg() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average n/a"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps per timing")
    parser.add_argument("--cap", type=float, default=6.0, help="seconds after which a timing stops early")
    parser.add_argument("--rounds", type=int, default=3, help="timings per cell; the median is reported")
    parser.add_argument("--no-large", action="store_true", help="only the demo's shapes")
    parser.add_argument("--tiny", action="store_true", help="1 step, 1 round, the first workload, threads 1 and 2")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.rounds, args.no_large = 1, 1, True

    default = torch.get_num_threads()  # before anything sets it: torch's own choice on this machine
    counts = [1, 2] if args.tiny else sorted({1, 2, 4, default})
    workloads = [w for w in WORKLOADS if not (args.no_large and w.large)][:1 if args.tiny else None]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"torch {torch.__version__}; os.cpu_count() {os.cpu_count()}, usable cores {cores}; torch default "
          f"threads {default}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')!r} "
          f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')!r}")
    for w in workloads:
        print(f"  {w.name}: {make_step(w)[1]:,} params, {w.n_features} features, input size {w.input_size}, "
              f"batch {w.batch}, hidden {w.hidden} x {w.layers} layers")

    results = {}
    print(f"\nas it is: {loadavg()}")
    results["as it is"] = measure(workloads, args.steps, args.cap, args.rounds, counts)
    with Busy(2):
        print(f"two busy loops beside: {loadavg()} (before they count)")
        results["2 busy"] = measure(workloads, args.steps, args.cap, args.rounds, counts)
    print(f"after: {loadavg()}")

    label = {n: f"{n}" + (" (default)" if n == default else "") for n in counts}
    print(f"\nmedian of {args.rounds} timings, seconds per training step; ratio = s/step / s/step at threads=1 "
          "(same workload, same condition)")
    print(f"{'condition':10s} {'workload':24s} {'threads':>12s} {'s/step':>9s} {'ratio':>7s}")
    for condition, cells in results.items():
        for w in workloads:
            base = cells[w.name, 1]
            for n in counts:
                s = cells[w.name, n]
                print(f"{condition:10s} {w.name:24s} {label[n]:>12s} {s:9.4f} {s / base:7.2f}")


if __name__ == "__main__":
    main()
