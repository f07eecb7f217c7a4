"""Torch's intra-op thread default for this project: `apply_default_threads() -> int | None`.

Rule: ``n = max(1, min(4, cores // 4))`` intra-op threads, where `cores` is the CPUs this process may run on
(`os.sched_getaffinity`, else `os.cpu_count()`): 1 thread up to 7 cores, 2 on 8-11, 3 on 12-15, 4 from 16
cores up (a 16-core GPU host gets 4). It is applied only when the user has not chosen: no `OMP_NUM_THREADS`
and no `MKL_NUM_THREADS` in the environment, and torch's thread count still at torch's own default (a
process that already called `torch.set_num_threads(k)` with k other than that default keeps its k).

Why. Torch's default is one OpenMP thread per physical core, and its worker threads spin-wait at every
parallel region's barrier. When the cores are busy (other trials, other users, the test suite) a
descheduled thread stalls the others, and the small networks this project trains do a few hundred
microseconds of work per op, so the waiting dominates. Measured with `python -m bench.threads` on the
2-core development machine, itself shared with other work (load average about 5 even "as it is"),
seconds per training step, ratio to 1 thread:

    workload (itransformer)                threads=1   2 (torch default)        4
    as it is
      demo 20k deep-narrow  (a20, L32)        0.156      0.906 (5.8x)     0.679 (4.3x)
      demo 50k shallow-wide (a20, L32)        0.092      1.767 (19x)      0.151 (1.6x)
      training default      (a20, L80)        0.047      0.264 (5.7x)     0.083 (1.8x)
      a200 L80 h128x3 (434k params)           1.387      3.395 (2.4x)     1.289 (0.93x)
    two busy loops beside
      demo 20k deep-narrow                    0.516     11.80 (23x)       0.987 (1.9x)
      demo 50k shallow-wide                   0.207      1.586 (7.7x)     0.162 (0.78x)
      training default                        0.105      2.437 (23x)      0.180 (1.7x)
      a200 L80 h128x3                         2.118      7.596 (3.6x)     2.051 (0.97x)

One thread was never meaningfully beaten on 2 cores: torch's default (2) was 2.4-23x slower, and
oversubscribing (4, where libgomp shortens its spin because threads outnumber CPUs) was at best within
~20% of one thread. Only an idle machine lets 2 threads pay off, and only for the larger networks (a
first, single-round run of the bench at load ~1 gave 0.53x for an a200 hidden-256 x 3 network, but 14x
and 4x slower for the demo's shapes). Hence 1 thread on few cores. On a large host the same
spin-against-busy-cores risk exists but one thread would cripple big networks trained on the CPU, so the
rule keeps three quarters of the cores free for other work (data loading, other trials, other users) and
caps at 4 (the project's networks are at most ~20M parameters; their ops scale poorly past a few
threads). That end of the rule is a judgment, not a measurement: this task had no many-core machine
(rerun `python -m bench.threads` there and adjust `default_threads`). A cgroup CPU quota (`docker --cpus`)
is not detected; set OMP_NUM_THREADS there.

    python -m bench.threads            # the table above, ~10 minutes on 2 busy cores

The CLIs call this once at start-up; `OMP_NUM_THREADS=k python -m ...` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_applied: int | None = None  # what this module set, so that a second call recognises its own setting


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(cores: int) -> int:
    """The rule of the module docstring: 1 thread up to 7 cores, then cores // 4, at most 4."""
    return max(1, min(4, cores // 4))


def _physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs of /proc/cpuinfo; None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    cores, package = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def _torch_defaults() -> set[int]:
    """What torch picks by itself: one thread per physical core, or per logical CPU where it cannot tell."""
    return {n for n in (os.cpu_count(), _physical_cores()) if n}


def apply_default_threads() -> int | None:
    """Set torch's intra-op threads to `default_threads(usable_cores())` unless the user chose already
    (OMP_NUM_THREADS or MKL_NUM_THREADS set, or torch.set_num_threads called with a non-default count).
    Returns the count it set (also when it set it before), or None when it left torch alone."""
    global _applied
    if any(os.environ.get(name, "").strip() for name in ENV_VARS):
        return None
    current = torch.get_num_threads()
    if _applied is not None and current == _applied:
        return _applied
    if current not in _torch_defaults():
        return None  # torch.set_num_threads was called by someone else
    n = default_threads(usable_cores())
    torch.set_num_threads(n)
    _applied = n
    return n
