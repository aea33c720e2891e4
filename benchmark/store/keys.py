"""The one key builder: every cell identity and every cached artifact's key is assembled here, from shared parts
(the data, the preset, a plugin with its version, the trainer's version), so each part means the same everywhere and
the trainer's version is added in one place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data import split_digests
from ..identity import Plugin, plugin_code, plugin_identity, preset_identity
from ..presets import Preset, get_preset
from ..training import TRAINER_VERSION

POISON_SELECTION_SEED = 0  # fixed: at one ratio every method and seed protects the same images


@dataclass(frozen=True)
class Parts:
    """What every key of one grid shares: the dataset, the SHA-256 of its train and test subsets, the preset."""

    dataset: str
    data: dict[str, str]  # split → SHA-256 of its images and labels
    preset: Preset

    @classmethod
    def of(cls, dataset: str, data_root: str | None, preset: str) -> Parts:
        """The parts of `dataset` (read from `data_root`) at the preset `preset` (a name, or `NAME[field=value]`)."""
        return cls(dataset, split_digests(dataset, data_root, preset), get_preset(preset))

    @property
    def preset_part(self) -> dict[str, Any]:
        return preset_identity(self.preset)


def _poison(ratio: float) -> dict[str, Any]:
    return {"ratio": ratio, "selection_seed": POISON_SELECTION_SEED}


def cell_identity(parts: Parts, victim: type, method: Plugin, countermeasure: Plugin, seed: int,
                  poison_ratio: float = 1.0) -> dict[str, Any]:
    """Everything that decides a cell's number."""
    identity = {
        "dataset": parts.dataset, "data": parts.data, "preset": parts.preset_part, "model": plugin_code(victim),
        "method": plugin_identity(method, parts.preset), "countermeasure": plugin_identity(countermeasure, parts.preset),
        "seed": seed, "trainer": TRAINER_VERSION,
    }
    if poison_ratio != 1.0:  # the full protocol keeps the identity it had before ratios existed
        identity["poison"] = _poison(poison_ratio)
    return identity


def protected_key(parts: Parts, method: Plugin, seed: int) -> dict[str, Any]:
    """Everything that decides a protected set (the trainer too: it makes the surrogates that methods attack)."""
    return {"dataset": parts.dataset, "train": parts.data["train"], "preset": parts.preset_part,
            "method": plugin_identity(method, parts.preset), "seed": seed, "trainer": TRAINER_VERSION}


def surrogate_key(parts: Parts, arch: type, seed: int) -> dict[str, Any]:
    """Everything that decides a clean surrogate's weights."""
    return {"dataset": parts.dataset, "train": parts.data["train"], "preset": parts.preset_part,
            "arch": plugin_code(arch), "seed": seed, "trainer": TRAINER_VERSION}


def preprocessed_key(protected: str, countermeasure: Plugin, preset: Preset, seed: int,
                     poison_ratio: float = 1.0) -> dict[str, Any]:
    """Everything that decides a countermeasure's pre-processing of a protected set (`protected`: that set's key)."""
    key = {"protected": protected, "countermeasure": plugin_identity(countermeasure, preset), "seed": seed}
    if poison_ratio != 1.0:
        key["poison"] = _poison(poison_ratio)
    return key


def artifact_key(owner: Plugin | type, spec: dict[str, Any]) -> dict[str, Any]:
    """A plugin's own artifact: what the plugin says made it, its code, and the trainer's version (its numerics, one
    thread per CPU task, made the artifact too)."""
    return {"spec": spec, "owner": plugin_code(owner), "trainer": TRAINER_VERSION}
