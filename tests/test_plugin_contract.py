"""The plugin contract (benchmark/plugins.py): parameters are checked against their declared ranges before any
work, and the built-in plugins' own defaults satisfy what they declare."""
from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.plugins import build, declared_limits
from benchmark.registry import countermeasures, methods


@pytest.mark.parametrize("registry", [methods, countermeasures], ids=lambda r: r.kind)
def test_every_declared_range_names_a_numeric_parameter_and_holds_its_default(registry):
    for name in registry.names():
        cls = registry.get(name)
        defaults = cls().params()
        for key, (low, high) in declared_limits(cls).items():
            assert key in defaults and isinstance(defaults[key], (int, float)), f"{name}.{key}"
            assert (low is None or defaults[key] >= low) and (high is None or defaults[key] <= high), f"{name}.{key}"


@pytest.mark.parametrize(("plugin", "key", "value", "message"), [
    ("lsp", "patch_size", "-1", r"lsp.patch_size must be ≥ 0, got -1"),
    ("tap", "step_size", "-0.5", r"tap.step_size must be ≥ 0, got -0.5"),
    ("em", "eps", "100", r"em.eps must be in \[0.5, 64\], got 100"),  # its strength knob's range
    ("tap", "shift", "-1", r"tap.shift must be ≥ 0, got -1"),
])
def test_a_value_outside_its_range_is_refused_naming_the_range(plugin, key, value, message):
    registry = countermeasures if plugin in countermeasures.names() else methods
    with pytest.raises(ValueError, match=message):
        build(registry.get(plugin), {key: value})
    build(registry.get(plugin), {})  # the defaults pass


def test_run_refuses_a_bad_parameter_before_any_folder_is_made(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--methods", "lsp", "--countermeasures", "none", "--preset", "smoke", "--out", str(out),
                 "--method-args", "lsp.patch_size=-1", "--data-root", str(tmp_path / "no-data")])
    assert code == 2 and "lsp.patch_size must be ≥ 0, got -1" in capsys.readouterr().err
    assert not out.exists()
