"""Budget solving: the largest shape of a style under a budget, exactly counted."""

import pytest

from models.params import count_params, solve_budget
from models.registry import available, get_spec

F, L = 20, 80


@pytest.mark.parametrize("budget", [750_000, 2_000_000])
@pytest.mark.parametrize("style", ["shallow-wide", "balanced", "deep-narrow"])
@pytest.mark.parametrize("name", available())
def test_largest_shape_under_budget(name, style, budget):
    hp = solve_budget(name, budget, style, F, L)
    count = hp.pop("count")
    shape = get_spec(name).styles[style]
    assert count == count_params(name, F, L, **hp) <= budget
    assert hp["n_layers"] == shape.n_layers and hp["hidden_size"] % hp["n_heads"] == 0
    bigger = hp["hidden_size"] + shape.hidden_step
    assert count_params(name, F, L, **{**hp, **shape.shape(bigger)}) > budget


@pytest.mark.parametrize("name", available())
def test_200m_shallow_wide_at_a200_with_projection(name):
    hp = solve_budget(name, 200_000_000, "shallow-wide", 200, 220, feature_proj=32)
    assert hp["feature_proj"] == 32 and 150_000_000 < hp["count"] <= 200_000_000


def test_fixed_hp_are_kept_and_styles_decide_the_shape():
    hp = solve_budget("patchtst", 750_000, "balanced", F, L, ff_mult=4, patch_len=8)
    assert hp["ff_mult"] == 4 and hp["patch_len"] == 8
    with pytest.raises(ValueError, match="decides hidden_size"):
        solve_budget("patchtst", 750_000, "balanced", F, L, hidden_size=64)


def test_budget_too_small_or_unknown_style_raises():
    with pytest.raises(ValueError, match="no deep-narrow itransformer fits 1,000 parameters"):
        solve_budget("itransformer", 1_000, "deep-narrow", F, L)
    with pytest.raises(ValueError, match="unknown style 'tall'"):
        solve_budget("itransformer", 750_000, "tall", F, L)
