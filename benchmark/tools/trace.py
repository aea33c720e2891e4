"""One cell's victim trained for a schedule of its own and traced at every evaluation: clean test accuracy, accuracy
on the (pre-processed) protected set it trains on, and how often the protected set's perturbation, planted in clean
test images, turns their prediction into the perturbation's class."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from ..engine.cells import ResolvedCell
from ..engine.config import GridConfig
from ..engine.recipe import stage_cell, train_cell
from ..evaluation import evaluate
from ..identity import git_state
from ..progress import quiet
from ..seeding import generator


def planted_images(
    test_images: torch.Tensor, test_labels: torch.Tensor, clean: torch.Tensor, protected: torch.Tensor,
    train_labels: torch.Tensor, num_classes: int, sparse: bool, gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every test image of class y with the perturbation of a random protected training image of class y+1 (mod the
    classes): its changed pixels copied in (`sparse`, for L0 methods such as OPS) or its difference added; returns
    the uint8 images and their planted classes."""
    target = (test_labels + 1) % num_classes
    donors = torch.empty_like(target)
    for c in target.unique().tolist():
        pool = (train_labels == c).nonzero().flatten()
        where = (target == c).nonzero().flatten()
        donors[where] = pool[torch.randint(len(pool), (len(where),), generator=gen)]
    if sparse:
        changed = (protected[donors] != clean[donors]).any(1, keepdim=True)
        return torch.where(changed, protected[donors], test_images), target
    delta = protected[donors].int() - clean[donors].int()
    return (test_images.int() + delta).clamp_(0, 255).to(torch.uint8), target


def trace_cell(
    config: GridConfig, cell: ResolvedCell, epochs: int, eval_every: int, progress: Callable[..., Any] = quiet,
    victim_seed: int | None = None,
) -> dict[str, Any]:
    """Train `cell`'s victim for `epochs` (the preset's recipe otherwise, its lr schedule stretched over them) and
    return the trace: per evaluation the epoch, test accuracy, protected-set accuracy, planted rate and the rate at
    which un-planted test images already fall in the planted class. `victim_seed` (default: the cell's seed) seeds
    the victim alone (its initialisation, batch order, augmentation), the protected set keeping the cell's."""
    if epochs < 1 or eval_every < 1:
        raise ValueError(f"epochs and eval_every must be ≥ 1, got {epochs}, {eval_every}")
    staged = stage_cell(cell, config, progress)
    train, test, trained_on, device = staged.train, staged.test, staged.images, staged.context.device
    sparse = cell.method.budget(tuple(train.images.shape[1:])).norm == "l0"
    planted, target = planted_images(test.images, test.labels, train.images, staged.generated, train.labels,
                                     train.num_classes, sparse, generator(cell.cell.seed, "trace/plant"))
    points: list[dict[str, float]] = []

    def measure(epoch: int, model: torch.nn.Module) -> None:
        points.append({
            "epoch": epoch,
            "protected_acc": evaluate(model, trained_on, train.labels, device),
            "planted_rate": evaluate(model, planted, target, device),
            "baseline_rate": evaluate(model, test.images, target, device),
        })

    recipe = dataclasses.replace(config.preset_obj, epochs=epochs, eval_every=eval_every)
    result = train_cell(staged, config, progress, schedule=recipe, victim_seed=victim_seed, on_eval=measure)
    for point, (_, acc) in zip(points, result.history):
        point["test_acc"] = acc
    commit, dirty = git_state()
    return {
        "cell_id": cell.cell_id, "epochs": epochs, "eval_every": eval_every, "planting": "copy" if sparse else "add",
        "protected_set": staged.generation["key"], "victim_seed": cell.cell.seed if victim_seed is None else victim_seed,
        "seconds": result.seconds, "threads": torch.get_num_threads(),
        "git_commit": commit, "git_dirty": dirty, "points": points,
    }
