"""On data with nothing to learn (i.i.d. returns), a run's 95% val interval must contain 0.5 at about the
nominal rate: the epoch is chosen on `val_select`, the interval measured on `val_report`. Slow: 20 runs."""

import pytest

from tests.test_data_support import synthetic_ohlcv
from training.train import train

SEEDS = range(20)


@pytest.mark.slow
def test_intervals_on_iid_data_contain_one_half_at_the_nominal_rate(tiny_config, tmp_path):
    covered = []
    for seed in SEEDS:
        path = tmp_path / f"iid{seed}.csv"
        synthetic_ohlcv(1500, seed=100 + seed).to_csv(path)
        cfg = tiny_config.override({"data.path": str(path), "train.seed": seed, "train.max_epochs": 4,
                                    "train.patience": 4})
        m = train(cfg, progress=False, plots=False, log_checkpoint=False).metrics
        covered.append(m["best/val/auroc_ci_low"] <= 0.5 <= m["best/val/auroc_ci_high"])
    # binomial(20, 0.95): 16 or more with probability 0.997
    assert sum(covered) >= 16, covered
