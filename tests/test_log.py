"""The driver's log (benchmark/engine/log.py): the one writer of a grid's rows, counting failures as it goes."""
from __future__ import annotations

import io

from benchmark.engine.log import GridLog
from benchmark.engine.plan import Plan
from benchmark.progress import GridProgress
from benchmark.store.rows import read_rows


def test_the_log_appends_every_row_and_counts_the_failed(tmp_path):
    log = GridLog(tmp_path)
    log.record("a", {"cell_id": "a", "status": "ok", "final_acc": 0.5})
    log.record("b", {"cell_id": "b", "status": "failed", "error": "ValueError: x"})
    assert (log.recorded, log.failed) == (2, 1)
    assert [r["cell_id"] for r in read_rows([tmp_path])] == ["a", "b"]


def test_with_a_plan_each_piece_is_reported_once_and_an_empty_prepare_is_not(tmp_path):
    plan = Plan(sets={("ops", 0): 10.0}, prepares={"none": 0.0, "diffusion": 5.0}, cells={"a": 20.0},
                victim_s={"tinycnn": 1.0}, cached=0)
    stream = io.StringIO()
    log = GridLog(tmp_path, plan, GridProgress(15.0, 20.0, 2, 1, stream=stream, bar=False))
    log.protected("ops", 0, "generated in 0:10", 10.0)
    log.prepared("none", "ready in 0:00", 0.0)  # prepares nothing: no line
    log.prepared("diffusion", "ready in 0:05", 5.0)
    log.record("a", {"cell_id": "cifar10/smoke/x/ops/none/seed0/abc", "status": "ok", "final_acc": 0.25,
                     "seconds": {"total": 20.0}}, running=0)
    log.close()
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert any("protected set ops seed 0 generated" in line for line in lines)
    assert any("countermeasure diffusion ready" in line for line in lines)
    assert not any("countermeasure none" in line for line in lines)
    assert any("cifar10/smoke/x/ops/none/seed0: 25.0%" in line and "0 failed" in line for line in lines)
    assert "100%" in lines[-1]
