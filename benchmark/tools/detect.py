"""`detect`: how easily a protected set is told from clean data. Simple networks on raw pixels, as UDP (Zhu, Yu and
Gao, AAAI 2024) builds them (a linear layer and a 2-layer network), learn to separate a method's protected images
from clean ones; their held-out accuracy and AUROC are the method's detectability. A protection that is trivially
detected invites a targeted purifier."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..data import load_splits
from ..engine.config import GridConfig
from ..engine.recipe import protected_set
from ..identity import digest, git_state, plugin_identity, plugin_label
from ..presets import preset_label
from ..progress import quiet
from ..seeding import generator
from ..store.rows import DETECTION_FILE, append_row, read_detection

HELD_OUT = 0.2  # the share of images the detectors never train on
DETECTORS = ("linear", "mlp")
DETECTOR_VERSION = "1"


@dataclass(frozen=True)
class Recipe:
    """How a detector trains: UDP's optimiser (SGD, lr 0.01, momentum 0.9, weight decay 5e-4, × 0.1 at 75 % and 90 %
    of the epochs) over `epochs` passes in minibatches of `batch`; `hidden` units in the 2-layer network."""

    epochs: int = 30
    batch: int = 128
    lr: float = 0.01
    hidden: int = 3072  # UDP's 2-layer network: 3072 → 3072 → out


def detector(kind: str, inputs: int, hidden: int) -> torch.nn.Module:
    """A linear layer, or a 2-layer network with a ReLU, on flattened pixels; one logit (protected or not)."""
    if kind == "linear":
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(inputs, 1))
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(inputs, hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(hidden, 1))
    raise ValueError(f"unknown detector {kind!r}; valid detectors: {', '.join(DETECTORS)}")


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The area under the ROC curve: the chance that a random positive scores above a random negative (ties half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs positives and negatives")
    above = (pos[:, None] > neg[None, :]).float().mean() + 0.5 * (pos[:, None] == neg[None, :]).float().mean()
    return float(above)


def detection_split(clean: torch.Tensor, protected: torch.Tensor, seed: int) -> tuple[torch.Tensor, ...]:
    """Each image once, clean or protected (half of the images each, drawn at random), so no image is seen both ways;
    then a held-out share. Returns train images, train labels, test images, test labels (1: protected)."""
    gen = generator(seed, "detect/split")
    order = torch.randperm(len(clean), generator=gen)
    half = len(order) // 2
    images = torch.cat([protected[order[:half]], clean[order[half:]]])
    labels = torch.cat([torch.ones(half), torch.zeros(len(order) - half)])
    mix = torch.randperm(len(images), generator=gen)
    images, labels = images[mix], labels[mix]
    test = max(2, round(HELD_OUT * len(images)))
    return images[test:], labels[test:], images[:test], labels[:test]


def train_detector(kind: str, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, recipe: Recipe, seed: int, device: torch.device,
                   progress: Callable[..., Any] = quiet) -> dict[str, float]:
    """Fit one detector on uint8 images (scaled to [0, 1]) and measure it on the held-out ones."""
    gen = generator(seed, f"detect/{kind}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
        model = detector(kind, train_x[0].numel(), recipe.hidden).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [max(1, round(0.75 * recipe.epochs)), max(1, round(0.9 * recipe.epochs))], gamma=0.1)
    x, y = train_x.to(device).float().div_(255), train_y.to(device)
    for _ in progress(range(recipe.epochs), desc=f"detect {kind}", leave=False):
        for idx in torch.randperm(len(x), generator=gen).to(device).split(recipe.batch):
            loss = F.binary_cross_entropy_with_logits(model(x[idx]).squeeze(1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        scores = model(test_x.to(device).float().div_(255)).squeeze(1).cpu()
    return {"accuracy": float(((scores > 0).float() == test_y).float().mean()), "auroc": auroc(scores, test_y)}


def detect(config: GridConfig, method_names: list[str], seeds: list[int], out: str | os.PathLike,
           recipe: Recipe = Recipe(), say: Callable[[str], None] = lambda text: None) -> list[dict[str, Any]]:
    """Each method's detectability at each seed, appended to OUT/detection.jsonl as one row per (method, seed,
    detector); a row whose id is already there is not computed again (resume). Returns the rows of this call."""
    built = {name: config.method(name) for name in method_names}  # bad names and arguments fail before any work
    if not seeds:
        raise ValueError("no seeds selected: pass --seeds 0,1,2")
    path = Path(out)
    done = {r["detection_id"] for r in read_detection([path])} if path.is_dir() else set()
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    commit, dirty = git_state()
    rows = []
    for name, method in built.items():
        for seed in seeds:
            identity = {"data": config.parts.data["train"], "preset": config.parts.preset_part,
                        "method": plugin_identity(method, config.preset_obj), "seed": seed,
                        "recipe": dataclasses.asdict(recipe), "held_out": HELD_OUT, "version": DETECTOR_VERSION}
            todo = [k for k in DETECTORS if digest(identity | {"detector": k}) not in done]
            if not todo:
                continue
            images, _ = protected_set(config, method, seed)
            split = detection_split(train.images, images, seed)
            for kind in todo:
                result = train_detector(kind, *split, recipe, seed, config.torch_device)
                row = {"detection_id": digest(identity | {"detector": kind}), "dataset": config.dataset,
                       "preset": preset_label(config.preset_obj), "method": method.name, "method_label": plugin_label(method),
                       "seed": seed, "detector": kind, **result, "train_size": len(split[0]),
                       "test_size": len(split[2]), "identity": identity | {"detector": kind},
                       "git_commit": commit, "git_dirty": dirty}
                append_row(path, row, DETECTION_FILE)
                rows.append(row)
                say(f"{plugin_label(method)} seed {seed} {kind}: accuracy {result['accuracy']:.3f}, "
                    f"AUROC {result['auroc']:.3f}")
    return rows
