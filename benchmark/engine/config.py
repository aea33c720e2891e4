"""What every cell of one grid shares: the dataset, preset, device, cache and plugin arguments."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import user_cache_dir
from ..imported import PREFIX, ImportedSet
from ..plugins import Countermeasure, Method, build
from ..presets import Preset, get_preset
from ..registry import countermeasures, methods
from ..store.cache import ArtifactCache
from ..store.keys import Parts

ENV_CACHE_DIR = "UEBENCH_CACHE_DIR"


@dataclass(frozen=True)
class GridConfig:
    """What every cell of one run shares."""

    dataset: str = "cifar10"
    preset: str = "smoke"
    data_root: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    download: bool = False
    method_args: dict[str, dict[str, str]] = field(default_factory=dict)
    countermeasure_args: dict[str, dict[str, str]] = field(default_factory=dict)
    budgets: dict[str, str] = field(default_factory=dict)  # imported set's name → threat model (`linf:8`)

    def __post_init__(self) -> None:
        get_preset(self.preset)
        for name in self.method_args:
            self.method(name)  # bad parameter names or values fail here, before any work
        for name in self.countermeasure_args:
            self.countermeasure(name)

    @property
    def preset_obj(self) -> Preset:
        return get_preset(self.preset)

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; valid devices: auto, cpu, cuda, cuda:N")
        device = torch.device(self.device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(
                    f"--device {self.device}: torch {torch.__version__} sees no GPU (torch.cuda.is_available() is "
                    "False); use --device cpu or auto"
                )
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ValueError(f"--device {self.device}: only {torch.cuda.device_count()} GPU(s) visible")
        return device

    @property
    def parts(self) -> Parts:
        """The data and preset parts of every key of this grid (the data's digests are memoised per process)."""
        return Parts.of(self.dataset, self.data_root, self.preset)

    @property
    def cache(self) -> ArtifactCache:
        root = self.cache_dir or os.environ.get(ENV_CACHE_DIR) or user_cache_dir() / "artifacts"
        return ArtifactCache(root)

    def method(self, name: str) -> Method:
        """The method `name`: a registered one with its arguments, or `file:PATH`, a protected set read from disk."""
        if name.startswith(PREFIX):
            path = name[len(PREFIX):]
            return ImportedSet(path=path, budget_spec=self.budgets.get(Path(path).expanduser().stem, "none"))
        return build(methods.get(name), self.method_args.get(name, {}))  # type: ignore[return-value]

    def countermeasure(self, name: str) -> Countermeasure:
        return build(countermeasures.get(name), self.countermeasure_args.get(name, {}))  # type: ignore[return-value]
