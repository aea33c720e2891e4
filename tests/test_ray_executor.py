"""`run --executor ray`: the grid as a Ray task graph on one local Ray of 2 CPUs, shared by the module."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

import benchmark.engine.log as grid_log
import benchmark.engine.ray_executor as ray_executor
from benchmark.cli import main
from tests import ray_plugins

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A local Ray whose workers find this repository (PYTHONPATH, read as Ray starts) and register
    tests/ray_plugins.py's plugins as they start; `run --executor ray` uses it as it is."""
    try:
        import ray
    except ImportError:
        pytest.fail("ray is missing: it is in the test extra (pip install -e '.[test]')")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        ray.init(num_cpus=2, logging_level=logging.WARNING,
                 runtime_env={"worker_process_setup_hook": "tests.ray_plugins.register"})
    ray_plugins.register()
    yield
    ray.shutdown()
    ray_plugins.unregister()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One artifact cache for the module, so that each protected set is made once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def argv(tmp_path, cache, data_root):
    def make(*extra: str, out: str = "run") -> list[str]:
        return ["run", "--preset", "smoke", "--out", str(tmp_path / out), "--cache-dir", str(cache),
                "--data-root", data_root, "--device", "cpu", *extra]
    return make


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def test_ray_gives_the_cells_and_accuracies_of_the_local_grid(tmp_path, argv, capsys, monkeypatch):
    grid = ("--methods", "clean,ops", "--defenses", "none,grayscale")
    assert main(argv(*grid, "--executor", "ray", "--cpus-per-cell", "1", out="ray")) == 0
    err = capsys.readouterr().err
    assert "at --executor ray (2 cells at a time)" in err
    assert err.count(" running or queued · 0 failed · ") == 4 and "cells 4/4" in err, "one line per finished cell"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(argv(*grid, "--jobs", "1", "--no-progress", out="local")) == 0
    finally:
        torch.set_num_threads(threads)
    on_ray, here = _rows(tmp_path / "ray"), _rows(tmp_path / "local")
    assert len(on_ray) == 4 and {r["threads"] for r in on_ray + here} == {1}
    assert {r["cell_id"]: r["final_acc"] for r in on_ray} == {r["cell_id"]: r["final_acc"] for r in here}
    assert any((tmp_path / "ray" / "gallery").iterdir()), "the driver draws each set from the shared cache"


def test_a_killed_worker_is_retried_once_then_its_cell_fails(tmp_path, argv, cache):
    assert main(argv("--methods", "clean", "--defenses", "zz-dies-once,zz-dies-twice", "--executor", "ray",
                     "--no-progress")) == 1
    rows = {r["countermeasure"]: r for r in _rows(tmp_path / "run")}
    assert rows["zz-dies-once"]["status"] == "ok"
    assert rows["zz-dies-twice"]["status"] == "failed" and rows["zz-dies-twice"]["error"].startswith("WorkerCrashedError")
    for name in ("zz-dies-once", "zz-dies-twice"):
        assert len((cache / f"{name}.attempts").read_text().splitlines()) == 2, f"{name}: one attempt and one retry"


def test_a_set_is_made_once_for_all_its_cells_and_a_failed_set_fails_only_its_cells(tmp_path, argv, cache):
    assert main(argv("--methods", "zz-counted,zz-broken", "--no-clean", "--defenses", "none,grayscale",
                     "--executor", "ray", "--no-progress")) == 1
    rows = _rows(tmp_path / "run")
    assert sorted((r["method"], r["status"]) for r in rows) == [("zz-broken", "failed")] * 2 + [("zz-counted", "ok")] * 2
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error"] == "RuntimeError: no set today" and "in generate" in failed["traceback"]
    assert len((cache / "zz-counted.attempts").read_text().splitlines()) == 1
    assert all(not r["generation_cached"] for r in rows if r["status"] == "ok")


def test_an_interrupted_grid_keeps_its_rows_and_resumes_with_the_rest(tmp_path, argv, capsys, monkeypatch):
    args = argv("--methods", "clean", "--defenses", "none,grayscale", "--executor", "ray", "--no-progress")
    real = grid_log.append_row

    def then_interrupt(run_dir, row):
        real(run_dir, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(grid_log, "append_row", then_interrupt)
    assert main(args) == 130
    assert "Resume with: python -m benchmark run" in capsys.readouterr().err
    (first,) = _rows(tmp_path / "run")
    monkeypatch.setattr(grid_log, "append_row", real)
    assert main(args) == 0
    assert "1 cells run (0 failed), 1 already finished" in capsys.readouterr().out
    rows = _rows(tmp_path / "run")
    assert rows[0] == first and len({r["cell_id"] for r in rows}) == 2


@pytest.mark.parametrize("extra, message", [
    (("--ray-address", "auto", "--gpus-per-cell", "1"), "--ray-address, --gpus-per-cell: only with --executor ray"),
    (("--executor", "ray", "--jobs", "2"), "--jobs is the local executor's"),
    (("--executor", "ray", "--cpus-per-cell", "0"), "--cpus-per-cell must be at least 1, got 0"),
    (("--executor", "ray", "--gpus-per-cell", "1.5"), "--gpus-per-cell above 1 must be a whole number"),
    (("--executor", "ray", "--gpus-per-cell", "-1"), "--gpus-per-cell must be a finite number of at least 0"),
    (("--executor", "ray", "--device", "cuda"), "--device cuda under --executor ray needs --gpus-per-cell"),
    (("--executor", "ray", "--gpus-per-cell", "0.5"), "--gpus-per-cell with --device cpu would hold GPUs"),
    (("--executor", "ray", "--device", "auto", "--gpus-per-cell", "1"), "no Ray node has room for one cell"),
])
def test_bad_ray_settings_fail_before_any_work(tmp_path, argv, capsys, extra, message):
    assert main(argv("--methods", "ops", "--no-clean", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_an_address_where_no_cluster_answers_fails_at_once():
    with pytest.raises(ValueError, match=r"Ray address 127\.0\.0\.1:1: no Ray cluster answers there"):
        ray_executor._init(ray_executor.require_ray(), "127.0.0.1:1")


def test_without_ray_the_error_names_the_extra(tmp_path, argv, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(argv("--methods", "ops", "--executor", "ray")) == 2
    assert "--executor ray needs Ray, which is not installed: pip install -e '.[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_cache_folder_that_a_node_cannot_see_is_named(tmp_path, argv, cache, capsys, monkeypatch):
    monkeypatch.setattr(ray_executor, "_reads", ray_plugins.blind)
    assert main(argv("--methods", "ops", "--executor", "ray")) == 2
    assert f"the cache folder {cache} is not visible on Ray node(s) " in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.jsonl").exists() and not list(cache.glob(".ray-probe-*"))
