"""The one cell recipe (benchmark/engine/recipe.py): a cell staged once, at its poison ratio, its costly
pre-processing cached; `run` and `trace` train the same staged images the same way."""
from __future__ import annotations

import pytest
import torch

from benchmark.engine.cells import Cell
from benchmark.engine.recipe import run_cell, stage_cell
from benchmark.tools.trace import trace_cell
from countermeasures.training import OrthogonalProjection


def test_a_staged_cell_protects_exactly_its_ratio_of_images(smoke_config):
    full = stage_cell(Cell("ops", "none", 0).resolve(smoke_config), smoke_config)
    half = stage_cell(Cell("ops", "none", 0, 0.5).resolve(smoke_config), smoke_config)
    clean = half.train.images
    assert torch.equal(full.images, full.generated) and full.poisoned == len(clean)
    changed = (full.generated != clean).flatten(1).any(1)
    kept = (half.images == full.generated).flatten(1).all(1)
    restored = (half.images == clean).flatten(1).all(1)
    assert half.poisoned == len(clean) // 2 and int((changed & ~restored).sum()) <= half.poisoned
    assert bool((kept | restored).all())  # every image is either the protected one or the clean one
    assert int((changed & kept).sum()) > 0 and int((changed & restored & ~kept).sum()) > 0  # both kinds occur


def test_costly_preprocessing_is_cached_and_timed_fresh_on_request(smoke_config, monkeypatch):
    calls = []
    real = OrthogonalProjection.run_preprocess
    monkeypatch.setattr(OrthogonalProjection, "run_preprocess",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    cell = Cell("lsp", "ortho_projection", 0).resolve(smoke_config)
    first = stage_cell(cell, smoke_config)
    again = stage_cell(cell, smoke_config)
    assert len(calls) == 1 and torch.equal(first.images, again.images)
    fresh = stage_cell(cell, smoke_config, cache_preprocess=False)
    assert len(calls) == 2 and torch.equal(fresh.images, first.images)
    assert not torch.equal(first.images, first.generated)  # the projection changed the set


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_trace_trains_the_cell_that_run_trains(smoke_config, ratio):
    """At the preset's own schedule a trace ends where the grid's cell ends, to the digit: one recipe, at a poison
    ratio too (whose images differ from the full set's: the first test)."""
    cell = Cell("ops", "grayscale", 0, ratio).resolve(smoke_config)
    preset = smoke_config.preset_obj
    row = run_cell(cell, smoke_config)
    trace = trace_cell(smoke_config, cell, preset.epochs, preset.eval_every)
    assert trace["cell_id"] == row["cell_id"]
    assert [p["test_acc"] for p in trace["points"]] == [acc for _, acc in row["history"]]
    assert trace["points"][-1]["test_acc"] == row["final_acc"]
