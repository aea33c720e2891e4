"""Benchmarks reuse the test fixtures (real CIFAR-10 from UEBENCH_DATA_ROOT)."""
from tests.conftest import data_root  # noqa: F401
