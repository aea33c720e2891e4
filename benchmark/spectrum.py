"""Where a protected set's perturbation sits in frequency, and how much of it a pre-processing countermeasure keeps."""
from __future__ import annotations

import torch

from .plugins import Context, Countermeasure


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


def kept_share(clean: torch.Tensor, protected: torch.Tensor, countermeasure: Countermeasure, labels: torch.Tensor,
               ctx: Context) -> float:
    """Energy of what is left of the perturbation after the countermeasure's pre-processing (of both sets, uint8)
    over the perturbation's energy: 1 keeps it all, 0 removes it (or maps both sets to the same images)."""
    before = _energy(protected.int() - clean.int())
    after = countermeasure.preprocess(protected, labels, ctx).int() - countermeasure.preprocess(clean, labels, ctx).int()
    return _energy(after) / before if before else float("nan")
