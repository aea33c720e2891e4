"""Identity: every key is built from effective settings, the preset's definition, plugin versions and content."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from PIL import Image

import methods.em as em_module
from benchmark.engine.cells import Cell
from benchmark.engine.config import GridConfig
from benchmark.engine.recipe import protected_set, protected_spec, run_cell
from benchmark.engine.surrogates import surrogate_spec
from benchmark.presets import PRESETS
from benchmark.registry import methods, models
from benchmark.store.cache import spec_key


@pytest.fixture
def config(smoke_config) -> GridConfig:
    return smoke_config


def _key(config: GridConfig, method: str = "em") -> str:
    return spec_key(protected_spec(config, config.method(method), 0))


def test_sentinels_are_resolved_so_the_preset_value_spelled_out_is_the_same_set(config, data_root):
    steps = em_module.SCHEDULE["smoke"][0]
    spelled = dataclasses.replace(config, method_args={"em": {"steps": str(steps)}})
    other = dataclasses.replace(config, method_args={"em": {"steps": str(steps + 1)}})
    assert _key(spelled) == _key(config) != _key(other)


def test_editing_a_schedule_table_makes_a_new_key(config, monkeypatch):
    before = _key(config)
    monkeypatch.setitem(em_module.SCHEDULE, "smoke", (11, *em_module.SCHEDULE["smoke"][1:]))
    assert _key(config) != before


def test_a_preset_field_changes_every_key_but_its_summary_changes_none(config, monkeypatch):
    cell = Cell("ops", "none", 0)
    before = (_key(config, "ops"), cell.resolve(config).cell_id, spec_key(surrogate_spec(config, "tinycnn")))
    monkeypatch.setitem(PRESETS, "smoke", dataclasses.replace(PRESETS["smoke"], summary="reworded"))
    assert (_key(config, "ops"), cell.resolve(config).cell_id, spec_key(surrogate_spec(config, "tinycnn"))) == before
    monkeypatch.setitem(PRESETS, "smoke", dataclasses.replace(PRESETS["smoke"], epochs=5))
    after = (_key(config, "ops"), cell.resolve(config).cell_id, spec_key(surrogate_spec(config, "tinycnn")))
    assert all(a != b for a, b in zip(after, before))


def test_a_plugin_version_bump_makes_a_new_key(config, monkeypatch):
    before = _key(config, "ops"), Cell("ops", "jpeg10", 0).resolve(config).cell_id
    monkeypatch.setattr(methods.get("ops"), "version", "2")
    assert _key(config, "ops") != before[0]
    assert Cell("ops", "jpeg10", 0).resolve(config).cell_id != before[1]


def test_a_semantic_folder_is_keyed_by_its_files_not_its_path(config, tmp_path):
    folder = tmp_path / "semantic"
    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True)
        Image.new("RGB", (8, 8), (c * 20, 0, 0)).save(folder / f"class{c}" / "a.png")
    dh = dataclasses.replace(config, method_args={"dh": {"semantic_source": "folder", "semantic_folder": str(folder)}})
    before = _key(dh, "dh")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(folder / "class3" / "a.png")
    assert _key(dh, "dh") != before


def test_cell_ids_end_in_a_full_sha256(config):
    cell_id = Cell("ops", "none", 0).resolve(config).cell_id
    assert re.fullmatch(r"cifar10/smoke/tinycnn/ops/none/seed0/[0-9a-f]{64}", cell_id)


def test_a_countermeasure_parameter_reuses_the_protected_set_but_not_the_cell(config):
    first = run_cell(Cell("ops", "jpeg10", 0).resolve(config), config)
    other = dataclasses.replace(config, countermeasure_args={"jpeg10": {"quality": "20"}})
    second = run_cell(Cell("ops", "jpeg10", 0).resolve(other), other)
    assert second["generation_cached"] and second["cell_id"] != first["cell_id"]
    assert second["method_id"] == first["method_id"] and second["countermeasure_id"] != first["countermeasure_id"]
    assert second["countermeasure_label"] == "jpeg10[quality=20]" and first["countermeasure_label"] == "jpeg10"
    assert first["config_id"] != second["config_id"]


def test_a_parameter_added_at_its_default_keeps_every_key():
    """`ADDED` metadata: a new parameter left at its default leaves the identity as before it existed."""
    from benchmark.identity import ADDED, effective_settings
    from benchmark.plugins import Method

    @dataclasses.dataclass
    class Before(Method):
        eps: float = 8.0

    @dataclasses.dataclass
    class After(Before):
        extra: int = dataclasses.field(default=0, metadata=ADDED)

    preset = PRESETS["smoke"]
    assert effective_settings(After(), preset) == effective_settings(Before(), preset)
    assert effective_settings(After(extra=3), preset) == {"eps": 8.0, "extra": 3}


def test_classwise_em_uses_a_stratified_subset_only_where_asked(config):
    em = methods.get("em-classwise")
    assert "subset" not in em().settings(PRESETS["quick"])
    paper = em().settings(PRESETS["paper"])
    assert (paper["subset"], paper["steps"], paper["step_size"]) == (0.2, 1, 0.8)  # the official class-wise script
    assert _key(dataclasses.replace(config, method_args={"em-classwise": {"subset": "0.5"}}), "em-classwise") != _key(
        config, "em-classwise")
    with pytest.raises(ValueError, match="subset must be in"):
        em(subset=1.5)


def test_stratified_keeps_the_share_of_every_class():
    import torch

    labels = torch.arange(10).repeat_interleave(50)
    keep = em_module.stratified(labels, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(labels[keep].bincount(), torch.full((10,), 10))
    assert len(keep.unique()) == len(keep)


def test_a_cached_set_made_by_a_surrogate_whose_code_changed_is_made_again(config, monkeypatch):
    """A surrogate's code is not in the protected set's key (the published sets keep theirs): the set records the
    surrogates it used, and a cached set whose surrogate has changed since is regenerated under the same key."""
    images, first = protected_set(config, config.method("tap"), 0)
    assert first["surrogates"] == {"tinycnn": {"name": "tinycnn", "version": "1", "distribution": None}}
    again, second = protected_set(config, config.method("tap"), 0)
    assert second["cached"] and torch.equal(again, images)
    key = _key(config, "tap")
    monkeypatch.setattr(models.get("tinycnn"), "version", "2", raising=False)  # a builder function: "1" unset
    with pytest.warns(UserWarning, match="surrogate code that has changed"):
        _, third = protected_set(config, config.method("tap"), 0)
    assert not third["cached"] and third["surrogates"]["tinycnn"]["version"] == "2"
    assert _key(config, "tap") == key  # the key is kept; the set under it was replaced
    assert protected_set(config, config.method("tap"), 0)[1]["cached"]
