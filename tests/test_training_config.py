import json

import pytest

from training.config import ConfigError, RunConfig


def test_params_round_trip_is_lossless():
    cfg = RunConfig().override({
        "data.path": "/data/spy.csv", "data.threshold": 0.0125, "model.name": "patchtst",
        "model.dropout": 0.35, "train.lr": 3.1e-05, "train.max_steps": 7,
    })
    params = cfg.to_params()
    assert all(isinstance(v, str) for v in params.values())
    assert params["data.tier"] == "a20" and params["train.lr"] == "3.1e-05"
    assert RunConfig.from_params({**params, "params.count": "1234"}) == cfg
    # a run launched by `mlflow run` also holds the entry point's own parameters, `data` among them
    assert RunConfig.from_params({**params, "data": "", "data_tier": "a50", "ci.method": "x"}) == cfg


def test_none_path_round_trips():
    cfg = RunConfig()
    assert cfg.to_params()["data.path"] == "None"
    assert RunConfig.from_params(cfg.to_params()).data.path is None


def test_json_round_trip(tmp_path):
    cfg = RunConfig().override({"model.hidden_size": "128", "train.seed": "7"})
    assert cfg.model.hidden_size == 128 and cfg.train.seed == 7
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert RunConfig.load(path) == cfg
    assert json.loads(cfg.to_json())["model"]["hidden_size"] == 128


@pytest.mark.parametrize(("values", "message"), [
    ({"model.bogus": 1}, "unknown config key 'model.bogus'"),
    ({"train.max_steps": "ten"}, "train.max_steps: cannot read 'ten' as int"),
    ({"nosection": 1}, "unknown config key 'nosection'"),
])
def test_bad_overrides(values, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig().override(values)


def test_missing_and_invalid_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        RunConfig.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not a JSON config"):
        RunConfig.load(bad)
    for text in ("[1, 2]", '{"model": 3}'):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=r"bad.json: not a config: expected \{section: \{field: value\}\}"):
            RunConfig.load(bad)
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="bad.json: not a JSON config"):
        RunConfig.load(bad)


def test_free_settings_are_marked_on_their_fields_and_change_neither_a_study_nor_an_ablation_cell():
    """`FREE` is read from the fields' metadata; a study's definition and an ablation cell's key leave out
    exactly those settings, and every other one changes both."""
    from hpo.ablation.plan import _cell
    from hpo.space import SearchSpace
    from hpo.study import _definition
    from training.config import FREE

    assert FREE == ("data.path", "train.accelerator", "train.precision", "train.matmul_precision")
    base = RunConfig()
    space = SearchSpace.build(base, ["20k"], set(), 20)

    def keys(cfg):
        return _definition(cfg, space, "fp", ["20k"], 1), _cell(cfg, "itransformer", 80, 1, "fp").key

    free = base.override({"data.path": "/elsewhere/spy.csv", "train.accelerator": "cpu",
                          "train.precision": "bf16-mixed", "train.matmul_precision": "high"})
    assert keys(free) == keys(base)
    for key, value in (("data.threshold", 0.02), ("train.max_epochs", 3)):
        definition, cell = keys(base.override({key: value}))
        assert definition != keys(base)[0] and cell != keys(base)[1], key
