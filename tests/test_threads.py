"""training.threads: the default is applied only when the user has not chosen. Each case runs in a fresh
interpreter so that the test process's own thread settings (conftest pins 1) do not matter."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from training.threads import default_threads

PROBE = """
import json, torch
from training import threads
before = torch.get_num_threads()
{prepare}
chosen = threads.apply_default_threads()
print(json.dumps({{"before": before, "chosen": chosen, "after": torch.get_num_threads(),
                   "again": threads.apply_default_threads(), "rule": threads.default_threads(threads.usable_cores()),
                   "user": {user}}}))
"""


def probe(env_extra: dict[str, str], prepare: str = "", user: str = "None") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(env_extra, PYTHONPATH=str(REPO))
    code = PROBE.format(prepare=prepare, user=user)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sets_the_rule_when_nobody_chose():
    out = probe({})
    assert out["chosen"] == out["rule"] == out["after"]
    assert out["again"] == out["chosen"]  # a second call recognises its own setting


@pytest.mark.parametrize("var", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_environment_choice_is_left_alone(var):
    # a count other than the rule's (torch 2.13 caps an environment count at the cores it sees)
    value = 1 if default_threads(os.cpu_count() or 1) == 2 else 2
    out = probe({var: str(value)})
    assert out["chosen"] is None and out["again"] is None
    assert out["after"] == out["before"] == min(value, os.cpu_count() or 1)


def test_earlier_set_num_threads_is_left_alone():
    # a count torch never picks by itself (more than the logical CPUs)
    user = "(os.cpu_count() or 1) + 3"
    out = probe({}, prepare=f"import os; torch.set_num_threads({user})", user=user)
    assert out["chosen"] is None
    assert out["after"] == out["user"]


def test_rule():
    assert [default_threads(c) for c in (1, 2, 4, 7, 8, 12, 16, 64)] == [1, 1, 1, 1, 2, 3, 4, 4]
