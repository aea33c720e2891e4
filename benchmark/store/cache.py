"""Content-addressed artifact cache: tensors saved with a checksum, loaded without unpickling."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch

from ..identity import digest


def spec_key(spec: dict[str, Any]) -> str:
    """The full SHA-256 of everything that determines an artifact (its canonical JSON)."""
    return digest(spec)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ArtifactCache:
    """`ROOT/KIND/KEY.pt` holds tensors, `KEY.json` the spec, metadata and the file's SHA-256."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def paths(self, kind: str, key: str) -> tuple[Path, Path]:
        folder = self.root / kind
        return folder / f"{key}.pt", folder / f"{key}.json"

    def load(self, kind: str, spec: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The cached tensors and metadata, or None when absent, stale or corrupt."""
        data_path, meta_path = self.paths(kind, spec_key(spec))
        try:
            meta = json.loads(meta_path.read_text())
            if meta["sha256"] != file_sha256(data_path):
                return None
            tensors = torch.load(data_path, map_location="cpu", weights_only=True)
        except Exception:  # any unreadable file (truncated, foreign, torn JSON) is simply rebuilt
            return None
        return tensors, meta["meta"]

    def save(self, kind: str, spec: dict[str, Any], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        data_path, meta_path = self.paths(kind, spec_key(spec))
        atomic_write(data_path, lambda p: torch.save(tensors, p))
        record = {"spec": spec, "meta": meta, "sha256": file_sha256(data_path)}
        atomic_write(meta_path, lambda p: p.write_text(json.dumps(record, indent=1, default=str)))

    def get_or_create(
        self,
        kind: str,
        spec: dict[str, Any],
        create: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
        """Cached artifact if valid, else `create()` saved and returned; the bool says 'from cache'. Processes that
        ask for the same artifact at once make it once: the others wait for it (a lock file beside it)."""
        hit = self.load(kind, spec)
        if hit is None:
            with self._making(kind, spec_key(spec)):
                hit = self.load(kind, spec)  # made while this process waited
                if hit is None:
                    tensors, meta = create()
                    self.save(kind, spec, tensors, meta)
                    return tensors, meta, False
        return hit[0], hit[1], True

    @contextmanager
    def _making(self, kind: str, key: str) -> Iterator[None]:
        """Hold the artifact's lock: an exclusive `flock`, released when the block ends or the process dies."""
        path = self.root / kind / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
