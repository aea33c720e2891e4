"""Named random streams: every consumer of randomness draws from its own stream of the cell seed."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

import torch


def stream_seed(seed: int, stream: str | int) -> int:
    """A 63-bit seed for the stream `stream` of `seed`; distinct names give unrelated seeds."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, stream: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator on `device` for the stream `stream` of `seed`."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


@contextmanager
def global_rng(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Seed torch's global RNG (CPU, and `device` when it is a GPU) inside the block, then restore it.

    For code that draws from the global RNG (module initialisation, torchattacks, kornia,
    torchvision.transforms.v2): its draws follow `seed`, and the caller's stream is left as it was."""
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def global_rng_from(gen: torch.Generator) -> Iterator[None]:
    """`global_rng` seeded by one draw from `gen`, so library draws follow the caller's stream."""
    seed = int(torch.randint(0, 2**62, (), generator=gen, device=gen.device))
    with global_rng(seed, gen.device):
        yield
