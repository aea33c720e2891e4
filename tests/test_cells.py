"""A grid's cells (benchmark/engine/cells.py): resolved once before any work, equal by id, and what every executor
and tool takes, so no piece downstream builds a plugin from its name again."""
from __future__ import annotations

import pickle

from benchmark.engine import config as config_module
from benchmark.engine.cells import Cell, expand_cells, resolve_cells
from benchmark.engine.grid import run_grid


def test_a_resolved_cell_is_its_id_and_travels_to_a_worker(smoke_config):
    cell = Cell("ops", "jpeg10", 0).resolve(smoke_config)
    again, other = Cell("ops", "jpeg10", 0).resolve(smoke_config), Cell("ops", "jpeg10", 1).resolve(smoke_config)
    assert cell == again and hash(cell) == hash(again) and cell != other
    assert cell.cell_id.startswith("cifar10/smoke/tinycnn/ops/jpeg10/seed0/") and cell.victim == "tinycnn"
    assert cell.identity["seed"] == 0 and cell.set_key == ("ops", 0)
    shipped = pickle.loads(pickle.dumps(cell))  # a spawned worker receives it pickled
    assert shipped == cell and shipped.identity == cell.identity and shipped.method.params() == cell.method.params()
    fresh = cell.fresh_countermeasure()  # one cell's setup cannot leave state for the next
    assert fresh is not cell.countermeasure and fresh.params() == cell.countermeasure.params()


def test_cells_of_one_method_share_its_instance(smoke_config):
    cells = resolve_cells(expand_cells(["ops", "lsp"], ["none", "grayscale"], [0, 1]), smoke_config)
    assert len(cells) == 8 and len({c.cell_id for c in cells}) == 8
    assert len({id(c.method) for c in cells}) == 2 and len({id(c.countermeasure) for c in cells}) == 2


def test_a_grid_builds_each_plugin_once(tmp_path, smoke_config, monkeypatch):
    """Preflight resolves every cell; the plan, the executor, the recipe and the rows take its plugins as built."""
    built = []
    real = config_module.build
    monkeypatch.setattr(config_module, "build", lambda cls, args: built.append(cls.__name__) or real(cls, args))
    summary = run_grid(["ops", "lsp"], ["none", "grayscale"], [0], tmp_path / "run", smoke_config, jobs=1,
                       show_progress=False)
    assert summary.ran == 4 and summary.failed == 0
    assert sorted(built) == sorted(["OnePixelShortcut", "LinearSeparablePerturbation", "NoDefense",
                                    "Grayscale"]), built
