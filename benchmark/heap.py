"""The C heap of a compute process: freed memory is kept for reuse instead of being handed back to the OS."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (glibc only); False where that is not possible.

    PyTorch's CPU allocator caches nothing, so each training step frees its activations and allocates them
    again. glibc hands large blocks back to the OS (mmap, heap trimming) and the next step faults the pages in
    afresh: a sixth of a quick victim's step on a 2-core machine, and a quarter of a DH hiding network's time in a
    grid worker (docs/performance.md). Which memory a tensor gets does not change what it computes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
