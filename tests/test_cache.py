"""Artifact cache: reuse, corruption detection, key sensitivity."""
from __future__ import annotations

import torch

from benchmark.store.cache import ArtifactCache


def test_cache_reuses_detects_corruption_and_rebuilds(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def create():
        calls.append(1)
        return {"images": torch.arange(12, dtype=torch.uint8)}, {"note": "x"}

    spec = {"method": "ops", "seed": 0}
    first, meta, hit = cache.get_or_create("protected", spec, create)
    again, _, hit_again = cache.get_or_create("protected", spec, create)
    assert (hit, hit_again, len(calls)) == (False, True, 1) and torch.equal(first["images"], again["images"])
    assert meta == {"note": "x"}

    data_path, _ = cache.paths("protected", next(p.stem for p in (tmp_path / "protected").glob("*.pt")))
    data_path.write_bytes(data_path.read_bytes()[:-7] + b"garbage")
    rebuilt, _, hit_after = cache.get_or_create("protected", spec, create)
    assert not hit_after and len(calls) == 2 and torch.equal(rebuilt["images"], first["images"])

    cache.get_or_create("protected", {**spec, "seed": 1}, create)
    assert len(calls) == 3, "a different spec is a different artifact"
