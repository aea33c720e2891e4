"""Surrogate models: trained once per (dataset, preset, arch), cached, checked, rebuilt when corrupt."""
from __future__ import annotations

import pytest
import torch

import benchmark.engine.surrogates as surrogates
from benchmark.engine.config import GridConfig
from benchmark.engine.recipe import make_context
from benchmark.progress import quiet


@pytest.fixture
def counted(monkeypatch):
    """Counts victim trainings started for surrogates."""
    calls = []
    real = surrogates.train_victim

    def wrapper(*args, **kwargs):
        calls.append(args[5].model)
        return real(*args, **kwargs)

    monkeypatch.setattr(surrogates, "train_victim", wrapper)
    monkeypatch.setattr(surrogates, "_memo", {})
    return calls


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def test_surrogate_is_trained_once_for_every_seed_then_read_from_disk(tmp_path, data_root, counted):
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path), device="cpu")
    first = make_context(config, seed=0, num_classes=10, progress=quiet).surrogate()
    assert counted == ["tinycnn"]
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    surrogates._memo.clear()  # a new process: only the disk cache remains
    again = make_context(config, seed=3, num_classes=10, progress=quiet).surrogate()
    assert counted == ["tinycnn"]
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(again)))


def test_corrupt_cached_surrogate_is_detected_and_rebuilt(tmp_path, data_root, counted):
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path), device="cpu")
    before = _weights(make_context(config, 0, 10, quiet).surrogate())
    (weights_file,) = (tmp_path / "surrogate").glob("*.pt")
    weights_file.write_bytes(weights_file.read_bytes()[:-100] + b"\0" * 100)
    surrogates._memo.clear()
    after = _weights(make_context(config, 0, 10, quiet).surrogate())
    assert len(counted) == 2  # retrained, and CPU training is deterministic, so the same weights
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert torch.load(weights_file, weights_only=True)


def test_surrogate_outside_the_engine_is_a_clear_error(ctx):
    with pytest.raises(RuntimeError, match="make_context"):
        ctx.surrogate()
