"""DH's training objective: HiNet's concealing, revealing and low-frequency losses, plus Latent
Feature Concentration (LFC) on the perturbations' features in a frozen clean classifier."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# HiNet's weights (λ_guide, λ_reconstruction, λ_low-frequency) on per-element means, where HiNet sums. The low-frequency
# mean runs over a quarter of the elements, so a unit of perturbation energy in the LL band costs 1 + 4 = 5 times one
# in the detail bands (HiNet: 1 + 1 = 2); `dh.low_weight=0.25` gives HiNet's ratio. LFC's weight is ours (method.py).
CONCEAL_WEIGHT = 1.0
REVEAL_WEIGHT = 5.0
LOW_FREQUENCY_WEIGHT = 1.0


def low_frequency_mse(stego_bands: torch.Tensor, cover_bands: torch.Tensor) -> torch.Tensor:
    """MSE between the LL Haar bands (the first quarter of the channels)."""
    ll = stego_bands.shape[1] // 4
    return F.mse_loss(stego_bands[:, :ll], cover_bands[:, :ll])


def detail_mse(stego_bands: torch.Tensor, cover_bands: torch.Tensor) -> torch.Tensor:
    """MSE between the three Haar detail bands (the last three quarters of the channels)."""
    ll = stego_bands.shape[1] // 4
    return F.mse_loss(stego_bands[:, ll:], cover_bands[:, ll:])


def last_conv_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The flattened output of the model's last conv block (`model.features`, before pooling)."""
    features = getattr(model, "features", None)
    if not isinstance(features, torch.nn.Module):
        raise TypeError(
            f"LFC needs a classifier with a `features` module (its conv trunk), got {type(model).__name__}; "
            "uebench's victims (benchmark.models.Classifier) have one"
        )
    return features(x).flatten(1)


def _pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & off_diagonal, ~same


def _cosine_distances(features: torch.Tensor) -> torch.Tensor:
    f = F.normalize(features, dim=1)
    return 1 - f @ f.T


def lfc_loss(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Latent Feature Concentration: mean cosine distance (1 − cos) over same-class pairs."""
    same, _ = _pair_masks(labels)
    if not same.any():
        raise ValueError("LFC needs at least two samples of one class in a batch")
    return _cosine_distances(features)[same].mean()


@torch.no_grad()
def feature_spread(features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cosine distance over same-class pairs and over different-class pairs."""
    same, different = _pair_masks(labels)
    d = _cosine_distances(features.float())
    return d[same].mean().item(), d[different].mean().item()
