"""Forced configs, search space, convergence and phase-2 selection, storage: no training."""

import itertools

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from conventions.cli import mask
from conventions.errors import UserError
from hpo.__main__ import build_parser, settings_from_args
from hpo.convergence import Convergence
from hpo.forced import EXTREMES, forced_configs
from hpo.phase2 import select_budgets
from hpo.space import SearchSpace, depth_param
from hpo.storage import open_storage
from models.budgets import DEFAULT_BUDGETS, STYLES, WIDTHS, count_params, n_heads, parse_budget, solve
from models.registry import get_spec
from models.space import Categorical


def settings(*argv):
    return settings_from_args(build_parser().parse_args(list(argv)))


def test_18_forced_configs_by_default_each_the_largest_of_its_style_within_its_budget():
    s = settings("--model", "itransformer", "--data-tier", "a200", "--forced-extremes")
    assert s.budgets == list(DEFAULT_BUDGETS) == ["750k", "2M", "20M"]  # 200M only when asked
    space = SearchSpace.build(s.base, s.budgets, set(s.pinned), 200)
    forced = forced_configs(s.grid(s.budgets, 200), space.values_of(s.base), depth_param)
    assert len(forced) == 18
    assert len({(f.params["budget"], f.style, f.regularisation.name) for f in forced}) == 18
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
        assert shape.n_layers == STYLES[f.style] == f.params[depth_param(f.params["budget"])]
        wider = WIDTHS[WIDTHS.index(shape.hidden_size) + 1]
        assert count_params("itransformer", 200, 80, **{**hp, "hidden_size": wider, "n_heads": n_heads(wider)}) > budget
        assert 1 <= shape.n_layers <= space.depths[f.params["budget"]]
        for name, (_, dim) in space.dims.items():  # every forced value lies inside the searched range
            value = f.params[name]
            assert value in dim.choices if hasattr(dim, "choices") else dim.low <= value <= dim.high


def test_budgets_and_param_budget_choose_the_forced_configs():
    s = settings("--data-tier", "a20", "--input-size", "16", "--budgets", "50k,20k", "--forced-extremes")
    assert s.budgets == ["20k", "50k"]
    space = SearchSpace.build(s.base, s.budgets, set(s.pinned), 20)
    forced = forced_configs(s.grid(s.budgets, 20), space.values_of(s.base), depth_param)
    assert len(forced) == 12 and {f.params["budget"] for f in forced} == {"20k", "50k"}

    s = settings("--data-tier", "a20", "--input-size", "16", "--param-budget", "50k", "--forced-extremes")
    assert s.budgets == ["50k"] and s.study_name == "itransformer-a20-L16-50k"
    forced = forced_configs(s.grid(s.budgets, 20), space.values_of(s.base), depth_param)
    assert len(forced) == 6 and {f.params["budget"] for f in forced} == {"50k"}

    s = settings("--budgets", "750k,2M,20M,200M")
    assert s.budgets[-1] == "200M"


def test_budget_too_small_for_the_searched_space_is_refused():
    s = settings("--data-tier", "a20", "--input-size", "16", "--budgets", "900,50k")
    with pytest.raises(UserError, match="budget 900 is too small for any itransformer shape over the searched space"):
        SearchSpace.build(s.base, s.budgets, set(s.pinned), 20)


@pytest.mark.parametrize("model", ["itransformer", "patchtst", "timexer", "informer"])
def test_every_depth_the_space_allows_fits_its_budget_at_every_searched_choice(model):
    """The 8k-style budgets of the old failures: no sampled (budget, depth, other choices) is infeasible."""
    s = settings("--model", model, "--data-tier", "a20", "--input-size", "32", "--budgets", "8k,20k")
    space = SearchSpace.build(s.base, s.budgets, set(s.pinned), 20)
    model_dims = {k.split(".", 1)[1]: d for k, d in space.dims.values()
                  if k.startswith("model.") and k != "model.dropout"}
    options = {n: d.choices if isinstance(d, Categorical) else (d.low, d.high) for n, d in model_dims.items()}
    for budget, depth in space.depths.items():
        assert depth >= 1
        for combo in itertools.product(*options.values()):
            cfg = s.base.override({f"model.{n}": v for n, v in zip(options, combo, strict=True)}).model
            assert solve(cfg, budget, depth, 20, 32) is not None, (budget, depth, combo)


def test_search_space_reads_the_backbone_capabilities():
    assert "feature_proj" not in SearchSpace.build(settings().base, ["750k"], set(), 20).dims
    a200 = SearchSpace.build(settings("--data-tier", "a200").base, ["750k"], set(), 200)
    assert a200.dims["feature_proj"][1].choices == (0, 16, 32)  # cost grows with F: projection searched
    informer = settings("--model", "informer", "--data-tier", "a200")
    assert "feature_proj" not in SearchSpace.build(informer.base, ["750k"], set(), 200).dims


def test_search_space_pins_set_keys_and_drops_focal_for_bce():
    s = settings("--model", "patchtst", "--input-size", "16", "--set", "train.lr=0.001")
    space = SearchSpace.build(s.base, s.budgets, set(s.pinned), 20)
    assert "lr" not in space.dims and {"dropout", "weight_decay", "focal_gamma", "focal_alpha"} <= set(space.dims)
    assert not {"hidden_size", "n_layers", "n_heads"} & set(space.dims)
    assert max(space.dims["patch_len"][1].choices) <= 16  # a patch longer than the window is never drawn
    s = settings("--set", "train.loss=bce")
    assert "focal_gamma" not in SearchSpace.build(s.base, s.budgets, set(s.pinned), 20).dims
    # what is searched is what the backbone declares (dropout's range included)
    declared = get_spec("patchtst").search_space
    assert {n: d for n, (_, d) in space.dims.items() if n in declared} == {
        **declared, "patch_len": Categorical((8, 12, 16))}


def finished(*values):
    """(trial number, value) in finishing order; None: pruned."""
    return list(enumerate(values))


def test_convergence_on_constructed_sequences():
    c = Convergence(patience=3, threshold=0.02)
    assert c.stop_reason([]) is None
    assert c.stop_reason(finished(0.60, 0.61, 0.615)) is None  # fewer than patience + 1 finished
    # the case the old rule got wrong: small gains add up to less than the threshold; the message names the
    # true best (0.619, trial 3), not the last best that had cleared the threshold
    reason = c.stop_reason(finished(0.60, 0.61, 0.615, 0.619))
    assert reason is not None and "best 0.6190 (trial 3)" in reason and "gained 0.0190" in reason
    assert c.stop_reason(finished(0.60, 0.61, 0.62, 0.63, 0.64)) is None  # 0.62 - 0.60 counts as 0.02
    assert c.stop_reason(finished(0.60, 0.59, 0.58, 0.65, 0.64, 0.64)) is None
    assert c.stop_reason(finished(0.60, 0.59, 0.58, 0.65, 0.64, 0.64, 0.66)) is not None
    # pruned trials count as finished trials but never as a best
    assert Convergence(patience=2).stop_reason(finished(0.5, None, None)) is not None
    assert Convergence(patience=2).stop_reason(finished(None, None, 0.5)) is None  # no best 2 trials ago
    assert Convergence(patience=2).stop_reason(finished(0.5, 0.6, 0.6, 0.6)) is not None  # threshold 0: no gain
    assert Convergence(patience=2).stop_reason(finished(0.5, 0.6, 0.6, 0.61)) is None
    with pytest.raises(UserError, match="patience"):
        Convergence(patience=0)


def test_convergence_reads_finished_trials_of_a_study():
    study = optuna.create_study(direction="maximize")
    for value, state in [(0.6, TrialState.COMPLETE), (None, TrialState.FAIL), (0.7, TrialState.PRUNED),
                         (0.61, TrialState.COMPLETE), (0.605, TrialState.COMPLETE)]:
        study.add_trial(create_trial(state=state, value=value))
    # finished: 0.6, pruned, 0.61, 0.605 (the failed trial is not a finished one)
    assert Convergence(patience=3, threshold=0.02).check(study) is not None
    assert Convergence(patience=2, threshold=0.01).check(study) is None  # 0.61 - 0.60 >= 0.01
    assert Convergence(patience=4, threshold=0.02).check(study) is None


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
    with pytest.raises(UserError, match="at least 2 budgets .* it has them in 1: 2M"):
        select_budgets(_phase1({"2M": [0.6, 0.7]}))


def test_storage_passwords_are_masked():
    assert mask("postgresql://me:s3cr:et@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert mask("sqlite:///studies.db") == "sqlite:///studies.db"


def test_storage_that_cannot_be_opened(tmp_path):
    with pytest.raises(UserError, match="cannot open storage missing/s.journal: directory missing does not exist"):
        open_storage("missing/s.journal")
    with pytest.raises(UserError, match=f"cannot open storage {tmp_path}: .* is a directory"):
        open_storage(str(tmp_path))
    with pytest.raises(UserError, match="cannot open storage sqlite:////nowhere/s.db"):
        open_storage("sqlite:////nowhere/s.db")
    with pytest.raises(UserError, match="no study storage at s.journal"):
        open_storage("s.journal", must_exist=True)
    assert not (tmp_path / "s.journal").exists()
    open_storage("s.journal")
    assert (tmp_path / "s.journal").is_file()
