"""Append-only JSONL results: one row per finished cell, appended all-or-nothing; a lock per run folder."""
from __future__ import annotations

import fcntl
import json
import math
import os
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

RESULTS_FILE = "results.jsonl"
DETECTION_FILE = "detection.jsonl"  # `detect`'s rows, beside a run's results
LOCK_FILE = ".lock"


def _without_non_finite(value: Any, path: str, replaced: list[str]) -> Any:
    """`value` with every NaN/inf float replaced by None; the dotted path of each goes into `replaced`."""
    if isinstance(value, float) and not math.isfinite(value):
        replaced.append(path)
        return None
    if isinstance(value, dict):
        return {k: _without_non_finite(v, f"{path}.{k}" if path else str(k), replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_non_finite(v, f"{path}.{i}" if path else str(i), replaced) for i, v in enumerate(value)]
    return value


def _serialize(row: dict[str, Any]) -> bytes:
    """One JSON line for `row`; non-finite floats become null and are listed under `non_finite`."""
    replaced: list[str] = []
    clean = _without_non_finite(row, "", replaced)
    if replaced:
        clean["non_finite"] = replaced
    return (json.dumps(clean, default=str, allow_nan=False) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data`, looping over short writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # a regular file never does this, but looping on it would never end
            raise OSError(f"os.write wrote {written} bytes")
        view = view[written:]


def append_row(run_dir: str | os.PathLike, row: dict[str, Any], name: str = RESULTS_FILE) -> None:
    """Append one row as a whole line to RUN/`name`, or leave the file exactly as it was and raise."""
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    line = _serialize(row)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # The last write was torn: end that line so this row starts a line of its own.
            line = b"\n" + line
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The row on one line, or None and why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    try:
        row = json.loads(text)
    except (ValueError, RecursionError):
        return None, "not valid JSON (interrupted write?)"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    if not isinstance(row.get("cell_id"), str):
        return None, "no string cell_id"
    return row, ""


def read_rows(run_dirs: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """All rows of the given run folders (or results files); a line that is no row is skipped with a warning."""
    rows = []
    for run_dir in run_dirs:
        path = Path(run_dir)
        path = path / RESULTS_FILE if path.is_dir() else path
        if not path.exists():
            raise FileNotFoundError(f"no results at {path}")
        lines = [(number, raw) for number, raw in enumerate(path.read_bytes().split(b"\n"), 1) if raw.strip()]
        parsed = [(number, *_parse_line(raw)) for number, raw in lines]
        if lines and all(row is None for _, row, _ in parsed):
            raise ValueError(f"{path} is not a results file: none of its {len(lines)} line(s) is a result row (one JSON "
                             "object with a cell_id per line, as a run folder's results.jsonl holds)")
        for number, row, why in parsed:
            if row is None:
                warnings.warn(f"{path}:{number}: skipped: {why}")
            else:
                rows.append(row)
    return rows


# The published boards' rows, where this package runs from a checkout of the repository (not from a wheel).
PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "results" / "leaderboards"


def published_rows_files() -> list[Path]:
    """The rows files of the published boards in this checkout (none when the package is installed elsewhere); their
    `detect` rows are no cells."""
    found = PUBLISHED_DIR.glob("**/*.jsonl") if PUBLISHED_DIR.is_dir() else []
    return sorted(p for p in found if p.name != DETECTION_FILE)


def carry_rows(sources: Iterable[str | os.PathLike], run_dir: str | os.PathLike,
               wanted: set[str]) -> list[dict[str, Any]]:
    """Append to `run_dir` the `ok` rows of `sources` (run folders or rows files) whose cell id is in `wanted`
    (one row per id, the first found), each labelled with the file it came from (`carried_from`, kept from an
    earlier carry); returns the rows carried. A row's id is the full hash of everything that made its number, so
    a carried row is the cell this code would compute (on the machine that computed it: docs/variance.md)."""
    carried: dict[str, dict[str, Any]] = {}
    for source in sources:
        path = Path(source)
        for row in read_rows([path]):
            if row.get("status") == "ok" and row["cell_id"] in wanted and row["cell_id"] not in carried:
                row = row | {"carried_from": row.get("carried_from") or str(path.resolve())}
                append_row(run_dir, row)
                carried[row["cell_id"]] = row
    return list(carried.values())


def finished_ids(run_dir: str | os.PathLike) -> set[str]:
    """Cell ids with an `ok` row: what a rerun skips."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return set()
    return {r["cell_id"] for r in read_rows([run_dir]) if r.get("status") == "ok"}


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock."""


def _describe_holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file; vague when that is empty or garbled."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"process {int(info['pid'])} (since {info['since']}: {info['command']})"
    except (ValueError, TypeError, KeyError, OSError):
        return "another process"


class RunLock:
    """Context manager holding an exclusive flock on RUN_DIR/.lock; the OS drops it if the holder dies."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        """Prepare the lock of `run_dir`; nothing is taken before the `with` block."""
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        """Take the lock and record this process in the lock file, or raise RunFolderBusy."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunFolderBusy(
                    f"run folder {self.run_dir} is in use by {_describe_holder(fd)}; "
                    "wait for it to finish or pass another --out"
                ) from None
            info = {
                "pid": os.getpid(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv),
            }
            os.ftruncate(fd, 0)
            _write_all(fd, json.dumps(info).encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Clear the holder record and release the lock."""
        fd, self._fd = self._fd, None
        try:
            # Cleared before unlocking, so nobody refused just before the next holder writes its own
            # record is told about this finished process.
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def read_detection(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The `detect` rows of each run folder (or of the folder of a rows file): FOLDER/detection.jsonl, none where it
    is absent, one row per detection id (the first found: a published folder and the run it came from hold the same
    rows); a line that is no detection row (a torn last write) is skipped."""
    rows: dict[str, dict[str, Any]] = {}
    for folder in dict.fromkeys(p if p.is_dir() else p.parent for p in map(Path, paths)):
        path = folder / DETECTION_FILE
        for line in path.read_text().splitlines() if path.is_file() else []:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("detection_id"), str):
                rows.setdefault(row["detection_id"], row)
    return list(rows.values())
