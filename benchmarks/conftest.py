"""Benchmarks reuse the test fixtures (real CIFAR-10 from UEBENCH_DATA_ROOT)."""
import pytest

from benchmark.engine.local import torch_threads
from tests.conftest import data_root  # noqa: F401


@pytest.fixture
def one_thread():
    """One torch thread, as every CPU task of a grid computes."""
    with torch_threads(1):
        yield
