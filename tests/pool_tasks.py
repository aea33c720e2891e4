"""Task functions for tests/test_pool.py, importable by the spawned workers."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class NeedsTwoArgs(Exception):
    """Pickles, but cannot be unpickled: pickle rebuilds it from its one-element args."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}/{b}")


def square_or_raise(x: int) -> int:
    """x squared; 3 raises a ValueError, 4 an exception that cannot cross the pipe."""
    if x == 3:
        raise ValueError("three is not allowed")
    if x == 4:
        raise NeedsTwoArgs(4, 2)
    return x * x


def scripted(task: tuple[str, int, str]) -> tuple[int, int]:
    """(this worker's pid, x squared) after doing `kind`: 'square', 'die' (SIGKILL itself), or
    'hold' (wait until some worker has run a 'square', so that the replacement worker must run one)."""
    kind, x, folder = task
    marker = Path(folder) / "square_ran"
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hold":
        deadline = time.monotonic() + 30
        while not marker.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("no worker ran a square task")
            time.sleep(0.05)
    else:
        marker.touch()
    return os.getpid(), x * x


def write_pid_then_sleep(job: tuple[str, float]) -> int:
    """Write this worker's pid to the file `job[0]`, sleep `job[1]` seconds, return the pid; a
    KeyboardInterrupt in the sleep leaves the file `job[0]`.interrupted."""
    path, seconds = job
    tmp = f"{path}.tmp"
    Path(tmp).write_text(str(os.getpid()))
    os.replace(tmp, path)  # readers never see a half-written file
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        Path(f"{path}.interrupted").touch()
        raise
    return os.getpid()


def make_once(task: tuple[str, str]) -> float:
    """Ask the cache at `root` for one artifact whose `create` takes a second and logs each call to `root`/made."""
    import torch

    from benchmark.store.cache import ArtifactCache

    root, name = task

    def create() -> tuple[dict, dict]:
        with open(Path(root) / "made", "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return {"x": torch.arange(3.0)}, {}

    tensors, _, _ = ArtifactCache(root).get_or_create("thing", {"name": name}, create)
    return float(tensors["x"].sum())


def quick_steps(steps: int) -> tuple[float, int]:
    """Images/s and minor page faults of `steps` quick-victim training steps at one thread, after 5 to warm up."""
    import resource
    import time

    import torch
    import torch.nn.functional as F

    from benchmark.models import create_model

    torch.set_num_threads(1)
    model = create_model("fastcnn", 10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x, y = torch.rand(128, 3, 32, 32).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (128,))
    faults, start = 0, 0.0
    for step in range(5 + steps):
        if step == 5:
            faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - start), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
