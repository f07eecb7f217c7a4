"""Every registered backbone: shapes, gradients, batch of one, exact counts, seeding, errors, declared data."""


import pytest
import torch

from conventions.errors import UserError
from models.budgets import count_params
from models.classifier import build_classifier
from models.config import HP_NAMES, ModelConfig
from models.registry import available, build_backbone, default_config, get_spec, resolve_hp
from models.space import Categorical, Float, Int

B, L, F = 4, 32, 6
TINY = {"hidden_size": 16, "n_layers": 2, "n_heads": 2, "ff_mult": 1, "dropout": 0.1, "patch_len": 8, "stride": 4,
        "factor": 2}
NAMES = available()


def test_registry_lists_the_four_architectures():
    assert NAMES == ["informer", "itransformer", "patchtst", "timexer"]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UserError, match="^unknown model 'x'; known: informer, itransformer, patchtst, timexer$"):
        get_spec("x")
    with pytest.raises(UserError, match="unknown model"):
        build_backbone("x", F, L)


def test_defaults_come_from_model_config_unless_the_backbone_declares_its_own():
    assert default_config("itransformer") == ModelConfig(name="itransformer")
    patchtst = default_config("patchtst")
    assert (patchtst.n_layers, patchtst.dropout, patchtst.hidden_size) == (3, 0.2, ModelConfig().hidden_size)
    # a backbone is built from exactly the fields it reads (plus the registry's feature projection)
    assert set(resolve_hp("informer")) == {*get_spec("informer").reads, "feature_proj"}
    assert resolve_hp("informer", patch_len=4) == resolve_hp("informer")  # a field it does not read


@pytest.mark.parametrize("proj", [0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name, proj):
    torch.manual_seed(0)
    model = build_classifier(name, F, L, feature_proj=proj, **TINY)
    x = torch.randn(B, L, F)
    features = model.backbone(x)
    assert features.shape == (B, model.backbone.out_dim)
    logits = model(x)
    assert logits.shape == (B,) and torch.isfinite(logits).all()
    model.loss(logits, torch.tensor([0, 1, 1, 0])).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_one_in_train_and_eval(name):
    model = build_classifier(name, F, L, **TINY)
    x = torch.randn(1, L, F)
    for train in (True, False):
        model.train(train)
        assert model(x).shape == (1,)


@pytest.mark.parametrize("name", NAMES)
def test_eval_forward_is_deterministic(name):
    model = build_classifier(name, F, L, **TINY).eval()
    x = torch.randn(B, L, F)
    torch.manual_seed(1)
    first = model(x)
    torch.manual_seed(2)
    assert torch.equal(first, model(x))


def test_informer_eval_sampling_leaves_global_rng_alone_and_training_samples():
    model = build_classifier("informer", F, L, **{**TINY, "dropout": 0.0})
    x = torch.randn(B, L, F)
    model.eval()
    state = torch.get_rng_state()
    model(x)
    assert torch.equal(state, torch.get_rng_state())
    model.train()  # ProbSparse key sampling draws from the global RNG in training
    torch.manual_seed(3)
    a = model(x)
    assert not torch.equal(state, torch.get_rng_state())
    assert not torch.equal(a, model(x))
    torch.manual_seed(3)
    assert torch.equal(a, model(x))


@pytest.mark.parametrize("proj", [0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_meta_count_equals_real_count(name, proj):
    model = build_classifier(name, F, L, feature_proj=proj, **TINY)
    real = sum(p.numel() for p in model.parameters())
    assert count_params(name, F, L, feature_proj=proj, **TINY) == real
    if proj:  # the projection is one Linear F -> k in front of a backbone on k channels
        assert real == count_params(name, proj, L, **TINY) + F * proj + proj


@pytest.mark.parametrize("name", NAMES)
def test_seed_decides_initial_weights_and_nothing_else(name):
    def build(seed):
        torch.manual_seed(seed)
        model = build_classifier(name, F, L, **TINY)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), torch.rand(1)

    (w1, after1), (w1b, after1b), (w2, after2) = build(1), build(1), build(2)
    assert torch.equal(w1, w1b) and torch.equal(after1, after1b)
    assert not torch.equal(w1, w2)
    assert not torch.equal(after1, after2)  # no seed_everything inside the build


def test_counting_does_not_touch_the_rng():
    state = torch.get_rng_state()
    for name in NAMES:
        count_params(name, F, L, **TINY)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_raise_one_clear_line(name):
    with pytest.raises(UserError, match="not divisible by n_heads"):
        build_backbone(name, F, L, **{**TINY, "hidden_size": 18, "n_heads": 4})
    with pytest.raises(UserError, match="unknown hyper-parameter"):
        build_backbone(name, F, L, hidden=16)
    with pytest.raises(UserError, match="feature_proj"):
        build_backbone(name, F, L, feature_proj=-1)


@pytest.mark.parametrize("name", ["patchtst", "timexer"])
def test_patch_longer_than_input_raises(name):
    with pytest.raises(UserError, match="patch_len 40 is longer than input_size 32"):
        build_backbone(name, F, L, **{**TINY, "patch_len": 40})


def test_informer_needs_two_heads():
    with pytest.raises(UserError, match="n_heads must be >= 2"):
        build_backbone("informer", F, L, **{**TINY, "n_heads": 1})


@pytest.mark.parametrize("name", NAMES)
def test_declared_data(name):
    spec = get_spec(name)
    assert spec.name == name
    assert set(spec.defaults or {}) | set(spec.search_space) <= set(spec.reads) <= set(HP_NAMES)
    assert spec.uses_patches == ("patch_len" in spec.reads)
    assert not {"hidden_size", "n_layers", "n_heads"} & set(spec.search_space)  # budgets decide the shape
    assert all(isinstance(d, Categorical | Int | Float) for d in spec.search_space.values())
    # every edge of the search space builds at the shortest context used (60) and a20
    for key, dim in spec.search_space.items():
        values = dim.choices if isinstance(dim, Categorical) else (dim.low, dim.high)
        for value in values:
            assert count_params(name, 20, 60, **{key: value}) > 0
