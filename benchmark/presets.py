"""The three scales of one protocol: smoke (tests), quick (CPU leaderboard), paper (GPU)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Everything that fixes the data scale and the victim's training recipe."""

    name: str
    summary: str
    train_per_class: int | None  # None: the full training set
    test_per_class: int | None  # None: the full test set
    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    warmup_epochs: float
    eval_every: int  # evaluate on the clean test set every this many epochs (and after the last)
    subset_seed: int = 0  # the class-balanced subset is fixed per preset, independent of the cell seed

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="smoke",
            summary="tests and CI: 100 train / 100 test images per class, tiny CNN, seconds per cell",
            train_per_class=100,
            test_per_class=100,
            model="tinycnn",
            epochs=4,
            batch_size=64,
            lr=0.05,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=True,
            warmup_epochs=0.5,
            eval_every=1,
        ),
        Preset(
            name="quick",
            summary="CPU leaderboard: 500 train images per class, full test set, fast CNN, ~30 s per cell on 2 CPU cores",
            train_per_class=500,
            test_per_class=None,
            model="fastcnn",
            epochs=10,
            batch_size=128,
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=True,
            warmup_epochs=1.0,
            eval_every=5,
        ),
        Preset(
            name="paper",
            summary="faithful reproduction on a GPU: full data, ResNet-18, 60 epochs",
            train_per_class=None,
            test_per_class=None,
            model="resnet18",
            epochs=60,
            batch_size=128,
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            nesterov=False,
            warmup_epochs=0.0,
            eval_every=1,
        ),
    ]
}


PLUMBING_ONLY = frozenset({"smoke"})  # presets whose numbers test the code, not the methods


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]
