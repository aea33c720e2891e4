"""Plugins for tests/test_ray_executor.py. A Ray worker knows only the plugins it imports, so tests/test_ray_executor.py starts Ray
with `register` as its worker setup hook, and registers them in the test process too."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from benchmark.plugins import Budget, Context, Countermeasure, Method
from benchmark.registry import countermeasures, methods


def attempt(folder: Path, name: str) -> int:
    """Count one more attempt of `name` in FOLDER/NAME.attempts (one line each); returns how many came before."""
    path = Path(folder) / f"{name}.attempts"
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return before


@dataclass
class DiesOnce(Countermeasure):
    """Kills its own process (SIGKILL, as the out-of-memory killer does) in its first `dies` attempts."""

    dies: ClassVar[int] = 1

    def setup(self, ctx: Context) -> None:
        if attempt(ctx.cache_dir, self.name) < self.dies:
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class DiesTwice(DiesOnce):
    """Kills its own process in its first two attempts."""

    dies: ClassVar[int] = 2


@dataclass
class Counted(Method):
    """Leaves the images as they are; counts its generations."""

    budget = Budget("linf", 0.0)

    def generate(self, images, labels, ctx):
        attempt(ctx.cache_dir, self.name)
        return images.clone()


@dataclass
class Broken(Method):
    """Never makes a set."""

    budget = Budget("linf", 0.0)

    def generate(self, images, labels, ctx):
        raise RuntimeError("no set today")


PLUGINS = [(countermeasures, "zz-dies-once", DiesOnce), (countermeasures, "zz-dies-twice", DiesTwice),
           (methods, "zz-counted", Counted), (methods, "zz-broken", Broken)]


def register() -> None:
    """Register the plugins above (Ray's worker setup hook, and the test process's)."""
    for registry, name, cls in PLUGINS:
        registry.register(name)(cls)


def unregister() -> None:
    """Remove them again."""
    for registry, name, _ in PLUGINS:
        registry._entries.pop(name, None)


def blind(path: str) -> bool:
    """A node that cannot read the probe file at `path`."""
    return False
