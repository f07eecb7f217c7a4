"""Budgets and shapes: parsing, the widest shape of a depth within a budget (exactly counted), styles,
repeated shapes across budgets, budgets that fit nothing."""

import pytest

from conventions.errors import UserError
from models.budgets import (
    STYLES,
    WIDTHS,
    budget_label,
    count_params,
    n_heads,
    parse_budget,
    parse_budgets,
    solve,
    style_grid,
)
from models.config import ModelConfig
from models.registry import available, default_config

F, L = 20, 80


@pytest.mark.parametrize(("text", "n"), [("750k", 750_000), ("2M", 2_000_000), ("1.5M", 1_500_000),
                                         ("20M", 20_000_000), ("200M", 200_000_000), ("20000", 20_000),
                                         (" 50K ", 50_000), ("1g", 10**9), ("1.1M", 1_100_000),
                                         ("2.05M", 2_050_000)])
def test_parse_budget(text, n):
    assert parse_budget(text) == n
    assert parse_budget(budget_label(n)) == n


@pytest.mark.parametrize("text", ["2X", "", "k", "-5k", "1.5", "2MM", "0"])
def test_unknown_budget_is_a_clear_error(text):
    with pytest.raises(UserError, match="budget"):
        parse_budget(text)


def test_budget_labels_are_canonical():
    assert parse_budgets("2M,750k") == ["750k", "2M"]
    with pytest.raises(UserError, match="budget 2M is listed twice in '2M,750k,2000k': list each budget once"):
        parse_budgets("2M,750k,2000k")
    assert [budget_label(n) for n in (750_000, 1_500_000, 20_000, 12_345)] == ["750k", "1.5M", "20k", "12345"]


def test_width_grid_heads_divide_every_width():
    assert all(w % n_heads(w) == 0 and w % 2 == 0 for w in WIDTHS)
    assert list(WIDTHS) == sorted(WIDTHS) and WIDTHS[0] == 8


@pytest.mark.parametrize("budget", ["750k", "2M"])
@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("name", available())
def test_widest_shape_under_budget(name, style, budget):
    cfg = default_config(name)
    shape = solve(cfg, budget, STYLES[style], F, L)
    hp = {**cfg.hp, "n_layers": shape.n_layers, "hidden_size": shape.hidden_size, "n_heads": shape.n_heads}
    assert shape.count == count_params(name, F, L, **hp) <= parse_budget(budget)
    assert shape.n_layers == STYLES[style] and shape.n_heads == n_heads(shape.hidden_size)
    wider = WIDTHS[WIDTHS.index(shape.hidden_size) + 1]
    assert count_params(name, F, L, **{**hp, "hidden_size": wider, "n_heads": n_heads(wider)}) > parse_budget(budget)


@pytest.mark.parametrize("name", available())
def test_200m_shallow_wide_at_a200_with_projection(name):
    shape = solve(ModelConfig(name=name, feature_proj=32), "200M", 1, 200, 220)
    assert 150_000_000 < shape.count <= 200_000_000


def test_other_model_fields_count_and_shape_fields_are_ignored():
    base = default_config("patchtst")
    wide = solve(base, "750k", 3, F, L)
    assert solve(ModelConfig(name="patchtst", n_layers=7, hidden_size=999, dropout=0.2), "750k", 3, F, L) == wide
    assert solve(ModelConfig(name="patchtst", ff_mult=4, patch_len=8), "750k", 3, F, L).hidden_size < wide.hidden_size


def test_too_small_is_none_and_a_budget_with_no_shape_is_a_user_error():
    cfg = default_config("itransformer")
    assert solve(cfg, "1k", 8, F, L) is None
    with pytest.raises(UserError, match="budget 300 is too small for any itransformer shape: the smallest has"):
        style_grid(cfg, ["300", "50k"], F, 16)
    grid = style_grid(cfg, ["1200"], F, 16)  # some styles fit: the others are None
    assert grid.shapes["1200", "deep-narrow"] is None and grid.shapes["1200", "shallow-wide"].count <= 1200


def test_a_budget_that_adds_no_new_shape_is_marked_a_repeat():
    cfg = default_config("itransformer")
    grid = style_grid(cfg, ["20k", "20001"], F, 32)  # one parameter more buys no wider shape
    assert grid.repeats == {("20001", s): "20k" for s in STYLES if grid.shapes["20k", s] is not None}
    assert [s.budget for s in grid.distinct()] == ["20k"] * len(grid.repeats)


def test_the_demo_budgets_give_distinct_shapes():
    grid = style_grid(default_config("itransformer"), ["20k", "50k"], F, 32)
    assert not grid.repeats and len(grid.distinct()) == 6
    assert len({s.key for s in grid.distinct()}) == 6
