"""The compute processes' heap keeps freed memory, so a training step stops faulting its pages in afresh."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.pool import run_parallel
from tests.pool_tasks import quick_steps

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
STEPS = 40
REPO = Path(__file__).resolve().parents[1]


def _in_fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def quick_steps_in_fresh_python(steps: int, keep: bool) -> tuple[float, int]:
    """`quick_steps` in a new Python process, on the kept heap or on glibc's default."""
    setup = "from benchmark.heap import keep_freed_memory; assert keep_freed_memory()\n" if keep else ""
    rate, faults = _in_fresh_python(setup + f"from tests.pool_tasks import quick_steps; print(*quick_steps({steps}))").split()
    return float(rate), int(faults)


def _faults(keep: bool) -> int:
    return quick_steps_in_fresh_python(STEPS, keep)[1]


@glibc
def test_training_steps_fault_far_fewer_pages_on_a_heap_that_keeps_freed_memory():
    default, kept = _faults(False), _faults(True)
    assert kept * 2 < default, (default, kept)


@glibc
def test_pool_workers_compute_on_a_heap_that_keeps_freed_memory():
    ((_, (_, in_worker)),) = run_parallel(quick_steps, [STEPS], jobs=1)
    assert in_worker * 2 < _faults(False)


def test_a_victim_trains_to_the_same_bits_on_either_heap():
    train = (
        "import hashlib, torch; torch.set_num_threads(1); torch.manual_seed(0)\n"
        "from benchmark.models import create_model\n"
        "m = create_model('fastcnn', 10); opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)\n"
        "for _ in range(3):\n"
        "    loss = torch.nn.functional.cross_entropy(m(torch.rand(128, 3, 32, 32)), torch.randint(0, 10, (128,)))\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n"
        "print(hashlib.sha256(b''.join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest())"
    )
    kept = _in_fresh_python("from benchmark.heap import keep_freed_memory; keep_freed_memory()\n" + train)
    assert kept == _in_fresh_python(train)


def test_without_glibc_the_heap_is_left_as_it_is(monkeypatch):
    import benchmark.heap as heap

    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.keep_freed_memory() is False
    monkeypatch.setattr(heap.sys, "platform", "linux")

    def no_libc(*args, **kwargs):
        raise OSError("no C library here")

    monkeypatch.setattr(heap.ctypes, "CDLL", no_libc)
    assert heap.keep_freed_memory() is False
