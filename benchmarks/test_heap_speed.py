"""The heap that keeps freed memory (`benchmark/heap.py`) against glibc's default: the quick victim's training
step at one thread, each round in two fresh processes, interleaved."""
from __future__ import annotations

from tests.test_heap import quick_steps_in_fresh_python


def test_the_quick_step_on_a_heap_that_keeps_freed_memory(benchmark):
    """Best of 3 interleaved rounds each (target: ≥ 1.0, the kept heap never slower)."""
    default, kept = [], []

    def round_() -> None:
        default.append(quick_steps_in_fresh_python(100, keep=False)[0])
        kept.append(quick_steps_in_fresh_python(100, keep=True)[0])

    benchmark.pedantic(round_, rounds=3, iterations=1)
    ratio = max(kept) / max(default)
    benchmark.extra_info.update(default_images_per_s=max(default), kept_images_per_s=max(kept), ratio=ratio)
    print(f"\nquick step, one thread: glibc default {max(default):.0f} img/s, heap kept {max(kept):.0f} img/s, "
          f"ratio {ratio:.2f}")
    assert ratio >= 1.0
