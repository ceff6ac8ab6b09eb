import pytest

from predvis.backends.registry import get_method
from predvis.config import build_config, parse_overrides, read_yaml
from predvis.experiment import load_experiment
from predvis.errors import ConfigError

BASE = {"name": "t", "method": "gopc", "model": {"kind": "gopc1"}, "train": {"epochs": 5},
        "profiles": {"smoke": {"train": {"epochs": 2, "lr": 0.5}}}}


def test_precedence_defaults_file_profile_override():
    cfg = build_config(BASE, "smoke", parse_overrides(["train.lr=0.25"]), "t.yaml", get_method)
    assert cfg.train.epochs == 2          # profile over file
    assert cfg.train.lr == 0.25           # override over profile
    assert cfg.train.batch_size == 50     # method default
    cfg = build_config(BASE, "quick", {}, "t.yaml", get_method)
    assert cfg.train.epochs == 5 and cfg.train.lr == 1e-3


def test_unknown_key_is_rejected_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'.*did you mean 'epochs'"):
        build_config(BASE, "quick", parse_overrides(["train.epoch=3"]), "t.yaml", get_method)
    with pytest.raises(ConfigError, match=r"unknown key 'modle'.*'model'"):
        build_config({**BASE, "modle": {}}, "quick", {}, "t.yaml", get_method)


def test_wrong_type_and_range():
    with pytest.raises(ConfigError, match=r"train.epochs: must be an integer, got 'many'"):
        build_config(BASE, "quick", parse_overrides(["train.epochs=many"]), "t.yaml", get_method)
    with pytest.raises(ConfigError, match=r"train.lr: must be > 0"):
        build_config(BASE, "quick", parse_overrides(["train.lr=-1"]), "t.yaml", get_method)
    with pytest.raises(ConfigError, match=r"model.kind: must be one of gopc1, vae1, got 'vae2'.*vae1"):
        build_config(BASE, "quick", parse_overrides(["model.kind=vae2"]), "t.yaml", get_method)


def test_yaml_floats_written_without_dot_are_numbers():
    cfg = build_config(BASE, "quick", parse_overrides(["train.lr=3e-4"]), "t.yaml", get_method)
    assert cfg.train.lr == pytest.approx(3e-4)


def test_unknown_method_and_profile():
    with pytest.raises(ConfigError, match="unknown method 'gopcc'.*did you mean 'gopc'"):
        build_config({**BASE, "method": "gopcc"}, "quick", {}, "t.yaml", get_method)
    with pytest.raises(ConfigError, match="unknown profile 'smok'"):
        build_config(BASE, "smok", {}, "t.yaml", get_method)


def test_malformed_and_missing_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line"):
        read_yaml(bad)
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="unknown experiment 'gopc_1'.*did you mean 'gopc1'"):
        load_experiment("gopc_1")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.lr"])


def test_shipped_experiments_load_in_every_profile():
    for name in ("gopc1", "vae1"):
        for profile in ("smoke", "quick", "full"):
            cfg = load_experiment(name, profile)
            assert cfg.name == name and cfg.profile == profile
