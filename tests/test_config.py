"""What every cell of a grid shares (benchmark/engine/config.py): bad settings fail when the config is made, the
cache folder comes from the argument, else the environment, and plugins are built with their arguments."""
from __future__ import annotations

import pytest

from benchmark.engine.config import ENV_CACHE_DIR, GridConfig


def test_plugin_arguments_are_checked_when_the_config_is_made():
    with pytest.raises(ValueError, match="lsp.patch_size"):
        GridConfig(method_args={"lsp": {"patch_size": "-1"}})
    with pytest.raises(ValueError, match="nope"):
        GridConfig(countermeasure_args={"jpeg10": {"nope": "1"}})
    with pytest.raises(KeyError, match="unknown preset 'huge'; valid presets: smoke, quick, paper"):
        GridConfig(preset="huge")


def test_the_plugins_come_with_their_arguments():
    config = GridConfig(method_args={"em": {"eps": "4"}}, countermeasure_args={"jpeg10": {"quality": "30"}})
    assert config.method("em").eps == 4.0 and config.method("tap").eps == 8.0
    assert config.countermeasure("jpeg10").quality == 30


@pytest.mark.parametrize(("device", "message"), [("tpu", "valid devices: auto, cpu, cuda, cuda:N"),
                                                  ("cuda:99", "")])
def test_a_bad_device_is_named(device, message):
    config = GridConfig(device=device)
    with pytest.raises(ValueError, match=f"--device {device}" if not message else message):
        config.torch_device


def test_the_cache_folder_comes_from_the_argument_else_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "env"))
    assert GridConfig().cache.root == tmp_path / "env"
    assert GridConfig(cache_dir=str(tmp_path / "arg")).cache.root == tmp_path / "arg"
