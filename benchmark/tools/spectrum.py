"""Where a protected set's perturbation sits in frequency, how much of it a pre-processing countermeasure keeps,
and whether what is kept still tells the classes apart."""
from __future__ import annotations

import torch

from ..plugins import Context, Countermeasure


def _energy(x: torch.Tensor) -> float:
    return float(x.double().pow(2).sum())


def haar_ll_share(delta: torch.Tensor) -> float:
    """The share of the perturbation's energy (N×C×H×W) in the coarse band of a one-level orthonormal Haar
    transform: 2×2 block means carry it, the three detail bands the rest (white noise: 1/4)."""
    d = delta.double()
    h, w = d.shape[-2] // 2 * 2, d.shape[-1] // 2 * 2
    d = d[..., :h, :w]
    blocks = d.unfold(-2, 2, 2).unfold(-2, 2, 2).sum((-1, -2)) / 2  # orthonormal LL coefficients
    total = _energy(d)
    return _energy(blocks) / total if total else float("nan")


def energy_share(left: torch.Tensor, delta: torch.Tensor) -> float:
    """Energy of what is left of a perturbation over the perturbation's own energy (NaN for no perturbation)."""
    before = _energy(delta)
    return _energy(left) / before if before else float("nan")


def kept_share(clean: torch.Tensor, protected: torch.Tensor, countermeasure: Countermeasure, labels: torch.Tensor,
               ctx: Context) -> float:
    """What the countermeasure's pre-processing (of both sets, uint8) leaves of the perturbation, as an energy
    share: 1 keeps it all, 0 removes it (or maps both sets to the same images)."""
    left = (countermeasure.preprocess(protected, labels, ctx).float()
            - countermeasure.preprocess(clean, labels, ctx).float())
    return energy_share(left, protected.float() - clean.float())


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, ridge: float = 1e-3) -> float:
    """Accuracy of a linear read-out of the class from `features` (N×…): ridge regression to one-hot targets
    fitted on the first half, scored on the second (chance is 1/classes; a class-wise pattern gives 1)."""
    x = features.flatten(1).double()
    half = len(x) // 2
    x = x - x[:half].mean(0)
    a, b = x[:half], x[half:]
    y = torch.nn.functional.one_hot(labels[:half], int(labels.max()) + 1).double()
    gram = a @ a.T
    gram += ridge * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(half, dtype=gram.dtype)
    scores = b @ (a.T @ torch.linalg.solve(gram, y))  # the dual form: N×N instead of D×D
    return float((scores.argmax(1) == labels[half:]).double().mean())
