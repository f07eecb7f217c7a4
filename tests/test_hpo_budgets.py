"""Budgets, styles, forced configs, search space, convergence and phase-2 selection: no training."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from hpo.__main__ import build_parser, settings_from_args
from hpo.budgets import (
    DEFAULT_BUDGETS,
    EXTREMES,
    STYLES,
    budget_label,
    forced_configs,
    parse_budget,
    parse_budgets,
)
from hpo.convergence import Convergence
from hpo.phase2 import select_budgets
from hpo.space import SearchSpace
from hpo.storage import mask, open_storage
from hpo.study import shapes_of
from models.params import count_params
from models.registry import get_spec


def settings(*argv):
    return settings_from_args(build_parser().parse_args(list(argv)))


@pytest.mark.parametrize(("text", "n"), [("750k", 750_000), ("2M", 2_000_000), ("1.5M", 1_500_000),
                                         ("20M", 20_000_000), ("200M", 200_000_000), ("20000", 20_000),
                                         (" 50K ", 50_000), ("1g", 10**9), ("1.1M", 1_100_000),
                                         ("2.05M", 2_050_000)])
def test_parse_budget(text, n):
    assert parse_budget(text) == n
    assert parse_budget(budget_label(n)) == n


@pytest.mark.parametrize("text", ["2X", "", "k", "-5k", "1.5", "2MM", "0"])
def test_unknown_budget_is_a_clear_error(text):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


def test_budget_labels_are_canonical():
    assert parse_budgets("2M,750k,2000k") == ["750k", "2M"]
    assert [budget_label(n) for n in (750_000, 1_500_000, 20_000, 12_345)] == ["750k", "1.5M", "20k", "12345"]


def test_18_forced_configs_by_default_each_the_largest_of_its_style_within_its_budget():
    s = settings("--model", "itransformer", "--data-tier", "a200", "--forced-extremes")
    assert s.budgets == list(DEFAULT_BUDGETS) == ["750k", "2M", "20M"]  # 200M only when asked
    space = SearchSpace.build(s.base, s.budgets, STYLES, set(s.pinned))
    forced = forced_configs(shapes_of(s.base, s.budgets, 200), space.values_of(s.base))
    assert len(forced) == 18
    assert len({(f.params["budget"], f.params["style"], f.regularisation.name) for f in forced}) == 18
    strong, weak = EXTREMES
    assert (strong.dropout, strong.lr, strong.weight_decay) == (0.5, 1e-4, 1e-3)  # the research's default
    for f in forced:
        reg = f.regularisation
        assert {k: f.params[k] for k in ("dropout", "lr", "weight_decay")} == {
            "dropout": reg.dropout, "lr": reg.lr, "weight_decay": reg.weight_decay}
        budget, shape = parse_budget(f.params["budget"]), f.shape
        hp = {"hidden_size": shape.hidden_size, "n_layers": shape.n_layers, "n_heads": shape.n_heads,
              "ff_mult": f.params["ff_mult"]}
        assert shape.count == count_params("itransformer", 200, 80, **hp) <= budget
        style = get_spec("itransformer").styles[f.params["style"]]
        assert shape.n_layers == style.n_layers
        bigger = style.shape(shape.hidden_size + style.hidden_step)
        assert count_params("itransformer", 200, 80, **{**hp, **bigger}) > budget
        for name, (_, dim) in space.dims.items():  # every forced value lies inside the searched range
            value = f.params[name]
            assert value in dim.choices if hasattr(dim, "choices") else dim.low <= value <= dim.high


def test_budgets_and_param_budget_choose_the_forced_configs():
    s = settings("--data-tier", "a20", "--input-size", "16", "--budgets", "50k,20k", "--forced-extremes")
    assert s.budgets == ["20k", "50k"]
    space = SearchSpace.build(s.base, s.budgets, STYLES, set(s.pinned))
    forced = forced_configs(shapes_of(s.base, s.budgets, 20), space.values_of(s.base))
    assert len(forced) == 12 and {f.params["budget"] for f in forced} == {"20k", "50k"}

    s = settings("--data-tier", "a20", "--input-size", "16", "--param-budget", "50k", "--forced-extremes")
    assert s.budgets == ["50k"] and s.study_name == "itransformer-a20-L16-50k"
    forced = forced_configs(shapes_of(s.base, s.budgets, 20), space.values_of(s.base))
    assert len(forced) == 6 and {f.params["budget"] for f in forced} == {"50k"}

    s = settings("--budgets", "750k,2M,20M,200M")
    assert s.budgets[-1] == "200M"


def test_budget_too_small_for_any_shape():
    s = settings("--data-tier", "a20", "--input-size", "16", "--budgets", "1k,50k")
    with pytest.raises(ValueError, match="budget 1k is too small for any itransformer shape"):
        shapes_of(s.base, s.budgets, 20)
    shapes = shapes_of(s.base, ["10k"], 20)  # some styles fit: the others are left out
    assert shapes["10k", "deep-narrow"] is None and shapes["10k", "shallow-wide"].count <= 10_000


def test_search_space_pins_set_keys_and_drops_focal_for_bce():
    s = settings("--model", "patchtst", "--input-size", "16", "--set", "train.lr=0.001")
    space = SearchSpace.build(s.base, s.budgets, STYLES, set(s.pinned))
    assert "lr" not in space.dims and {"dropout", "weight_decay", "focal_gamma", "focal_alpha"} <= set(space.dims)
    assert not {"hidden_size", "n_layers", "n_heads"} & set(space.dims)
    assert max(space.dims["patch_len"][1].choices) <= 16  # a patch longer than the window is never drawn
    s = settings("--set", "train.loss=bce")
    assert "focal_gamma" not in SearchSpace.build(s.base, s.budgets, STYLES, set(s.pinned)).dims


def test_convergence_on_a_constructed_sequence():
    c = Convergence(patience=3, threshold=0.02)
    assert c.stop_reason([]) is None
    assert c.stop_reason([0.60, 0.61, 0.615]) is None  # 2 trials without a 0.02 gain: not yet
    reason = c.stop_reason([0.60, 0.61, 0.615, 0.619])  # small gains do not reset the count
    assert reason is not None and "3 completed trials" in reason and "best 0.6000" in reason
    assert c.stop_reason([0.60, 0.61, 0.62, 0.63, 0.64]) is None  # 0.62 counts as a 0.02 improvement
    assert c.stop_reason([0.60, 0.59, 0.58, 0.65, 0.64, 0.64]) is None
    assert c.stop_reason([0.60, 0.59, 0.58, 0.65, 0.64, 0.64, 0.66]) is not None
    assert Convergence(patience=2).stop_reason([0.5, 0.6, 0.6, 0.6]) is not None
    with pytest.raises(ValueError, match="patience"):
        Convergence(patience=0)


def test_convergence_reads_completed_trials_of_a_study():
    study = optuna.create_study(direction="maximize")
    for value, state in [(0.6, TrialState.COMPLETE), (None, TrialState.FAIL), (0.7, TrialState.PRUNED),
                         (0.61, TrialState.COMPLETE), (0.605, TrialState.COMPLETE)]:
        study.add_trial(create_trial(state=state, value=value))
    assert Convergence(patience=2, threshold=0.02).check(study) is not None
    assert Convergence(patience=3, threshold=0.02).check(study) is None


def _phase1(best: dict[str, list[float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="p1")
    dist = {"budget": CategoricalDistribution(["20k", "50k", "750k", "2M"])}
    for budget, values in best.items():
        for v in values:
            study.add_trial(create_trial(value=v, params={"budget": budget}, distributions=dist))
    study.add_trial(create_trial(state=TrialState.PRUNED, value=0.99, params={"budget": "2M"}, distributions=dist))
    return study


def test_phase2_picks_the_two_budgets_with_the_best_val_auroc():
    study = _phase1({"750k": [0.55, 0.62], "2M": [0.60], "20k": [0.58, 0.61], "50k": [0.50]})
    assert select_budgets(study) == ["20k", "750k"]  # by best value (pruned trials ignored), listed by size
    with pytest.raises(ValueError, match="at least 2 budgets .* it has them in 1: 2M"):
        select_budgets(_phase1({"2M": [0.6, 0.7]}))


def test_storage_passwords_are_masked():
    assert mask("postgresql://me:s3cr:et@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert mask("sqlite:///studies.db") == "sqlite:///studies.db"


def test_storage_that_cannot_be_opened(tmp_path):
    with pytest.raises(ValueError, match="cannot open storage missing/s.journal: directory missing does not exist"):
        open_storage("missing/s.journal")
    with pytest.raises(ValueError, match=f"cannot open storage {tmp_path}: .* is a directory"):
        open_storage(str(tmp_path))
    with pytest.raises(ValueError, match="cannot open storage sqlite:////nowhere/s.db"):
        open_storage("sqlite:////nowhere/s.db")
    with pytest.raises(ValueError, match="no study storage at s.journal"):
        open_storage("s.journal", must_exist=True)
    assert not (tmp_path / "s.journal").exists()
    open_storage("s.journal")
    assert (tmp_path / "s.journal").is_file()
