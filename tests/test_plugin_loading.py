"""Third-party plugins cannot break the benchmark: each entry point loads on its own, collisions and
renames are refused, CLI values follow the annotations, stray arguments are reported."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from benchmark.cli import main
from benchmark.plugins import Method, build
from benchmark.registry import PluginLoadError, Registry, methods, models
from methods.ops import OnePixelShortcut

NOISE = '''
from dataclasses import dataclass
from benchmark.plugins import Budget, Method
from benchmark.registry import register_method


@register_method("noise")
@dataclass
class Noise(Method):
    """Test plugin."""

    eps: float = 8.0
    budget = Budget("linf", 8 / 255)

    def generate(self, images, labels, ctx):
        return images.clone()
'''


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_works(installed_plugin, capsys):
    installed_plugin("broken_ue", "import a_module_that_does_not_exist\n", "uebench.methods")
    assert methods.get("ops") is OnePixelShortcut and "broken_ue" not in methods.names()
    (error,) = methods.errors
    assert "'broken_ue' of broken_ue" in error and "ModuleNotFoundError" in error
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "ops" in out and "failed to load" in out and "a_module_that_does_not_exist" in out
    methods._loaded = False
    with pytest.raises(PluginLoadError, match="broken_ue"):
        Registry.strict = True
        try:
            methods.names()
        finally:
            Registry.strict = False
    methods._loaded = False
    assert main(["--strict-plugins", "list", "methods"]) == 2
    assert "broken_ue" in capsys.readouterr().err


def test_a_plugin_that_fails_half_way_leaves_nothing_registered(installed_plugin):
    source = '''
        from benchmark.registry import register_model
        from benchmark.models import tinycnn

        register_model("half-a")(lambda num_classes=10: tinycnn(num_classes))
        raise RuntimeError("the second model needs a library that is missing")
    '''
    installed_plugin("half_models", source, "uebench.models")
    assert "half-a" not in models.names() and "tinycnn" in models.names()
    assert "the second model needs" in models.errors[0]


def test_collisions_with_a_built_in_name_are_refused_in_both_forms(installed_plugin):
    installed_plugin("clash_ue", NOISE.replace('"noise"', '"ops"'), "uebench.methods",
                     "clash-module = clash_ue\nops = clash_ue:Noise")
    assert methods.get("ops") is OnePixelShortcut
    assert len(methods.errors) == 2 and all("'ops' is already registered by methods.ops" in e for e in methods.errors)


def test_a_registered_plugin_is_never_renamed_by_its_entry_point(installed_plugin):
    installed_plugin("renamed_ue", NOISE, "uebench.methods", "noise-e = renamed_ue:Noise")
    assert "noise-e" not in methods.names()
    assert "already registered as method 'noise'; it cannot also be 'noise-e'" in methods.errors[0]


def test_the_same_name_in_decorator_and_entry_point_is_one_plugin(installed_plugin):
    installed_plugin("named_ue", NOISE, "uebench.methods", "noise = named_ue:Noise")
    assert methods.names().count("noise") == 1 and not methods.errors
    assert methods.get("noise").distribution == {"name": "named_ue", "version": "1.0"}


def test_cli_values_follow_the_field_annotation(temp_plugin):
    @dataclass
    class Typed(Method):
        """An int default on a float field, a flag and a text field."""

        eps: float = 8
        fast: bool = False
        arch: str = ""

    temp_plugin(methods, "zz-typed", Typed)
    plugin = build(Typed, {"eps": "8.5", "fast": "yes", "arch": "123"})
    assert (plugin.eps, plugin.fast, plugin.arch) == (8.5, True, "123")
    with pytest.raises(ValueError, match="bad value for zz-typed.fast: expected a boolean"):
        build(Typed, {"fast": "maybe"})


def test_arguments_for_a_plugin_outside_the_grid_are_reported(tmp_path, data_root, capsys):
    assert main(["run", "--preset", "smoke", "--methods", "ops", "--no-clean", "--defenses", "none",
                 "--defense-args", "jpeg10.quality=20", "--out", str(tmp_path / "run"), "--cache-dir",
                 str(tmp_path / "cache"), "--data-root", data_root, "--device", "cpu", "--no-progress"]) == 0
    assert "--countermeasure-args names 'jpeg10', which is not in this grid (none); its arguments are unused" in (
        capsys.readouterr().err)
