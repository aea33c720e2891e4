"""Append-only JSONL results: one row per finished cell, written with a single atomic append."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"


def append_row(run_dir: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row; a single write on an O_APPEND descriptor, then fsync."""
    path = Path(run_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, default=str, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(run_dirs: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """All rows of the given run folders (or results files); a torn last line is skipped with a warning."""
    rows = []
    for run_dir in run_dirs:
        path = Path(run_dir)
        path = path / RESULTS_FILE if path.is_dir() else path
        if not path.exists():
            raise FileNotFoundError(f"no results at {path}")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipping an unreadable line (interrupted write?)")
    return rows


def finished_ids(run_dir: str | os.PathLike) -> set[str]:
    """Cell ids with an `ok` row: what a rerun skips."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return set()
    return {r["cell_id"] for r in read_rows([run_dir]) if r.get("status") == "ok"}
