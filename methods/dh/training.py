"""Training the hiding network on the training images as covers, and hiding every image's secret."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from benchmark.seeding import generator, global_rng, stream_seed
from benchmark.training import warmup_cosine

from ..attacks import batches, quantize
from .distortions import random_distortion
from .hiding import HidingNetwork, dwt, iwt
from .losses import (
    CONCEAL_WEIGHT, LOW_FREQUENCY_WEIGHT, REVEAL_WEIGHT, detail_mse, feature_spread, last_conv_features, lfc_loss,
    low_frequency_mse,
)

HIDE_BATCH = 500
MEASURE_LIMIT = 1000  # images the revealed-secret PSNR and the feature spread are measured on
ADAM_BETAS = (0.5, 0.999)  # HiNet's
WEIGHT_DECAY = 1e-5  # HiNet's
WARMUP = 0.1  # ours, with GRAD_CLIP: without both, lr 5e-3 sometimes blows up early (measured)
GRAD_CLIP = 1.0  # max gradient norm


@dataclass(frozen=True)
class TrainingSettings:
    """Everything that determines a trained hiding network, given its data and seed."""

    blocks: int
    width: int
    dense_layers: int
    steps: int
    lr: float
    per_class: int  # samples of each class in a batch (LFC compares same-class pairs)
    classes_per_batch: int
    lfc_weight: float
    reveal_noise: float  # std of the Gaussian standing in for the lost branch r when revealing
    eps: float  # L∞ bound of the perturbation in [0,1] units, applied in training too (0: none)
    # Robustness settings, added later: their defaults stay out of the cache key (`key`).
    distortion: str = "none"  # `filters`: a random low-pass distortion between stego and reveal (distortions.py)
    detail_weight: float = 0.0  # weight of the MSE of the perturbation's Haar detail bands
    low_weight: float = LOW_FREQUENCY_WEIGHT  # weight of the low-frequency (LL band) MSE

    def key(self) -> dict[str, Any]:
        """The settings for the cache key; the later ones only where they differ from their defaults."""
        later = {f.name: f.default for f in dataclasses.fields(self) if f.name in LATER}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in later or v != later[k]}


LATER = ("distortion", "detail_weight", "low_weight")


def bounded(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """eps · tanh(delta / eps): the perturbation squashed smoothly into (−eps, eps); unchanged when eps is 0."""
    return eps * torch.tanh(delta / eps) if eps > 0 else delta


def class_balanced_batch(
    members: list[torch.Tensor], classes_per_batch: int, per_class: int, gen: torch.Generator
) -> torch.Tensor:
    """Indices of `per_class` random samples from each of `classes_per_batch` random classes."""
    classes = torch.randperm(len(members), generator=gen)[:classes_per_batch]
    return torch.cat([members[c][torch.randint(len(members[c]), (per_class,), generator=gen)] for c in classes])


def _to_unit(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device).float().div_(255)


def train_hiding_network(
    covers: torch.Tensor,
    labels: torch.Tensor,
    secrets: torch.Tensor,
    assignment: torch.Tensor,
    surrogate: torch.nn.Module | None,
    s: TrainingSettings,
    seed: int,
    device: torch.device,
    progress: Callable[..., Any],
) -> tuple[HidingNetwork, dict[str, list[float]]]:
    """Train on uint8 covers, each hiding the uint8 semantic image `secrets[assignment[i]]`, with
    concealing + revealing + low-frequency (+ detail-band) losses and, when `s.lfc_weight` > 0, LFC
    through `surrogate`, the secret revealed from the stego image after a random distortion when
    `s.distortion` is `filters`; returns the network (eval mode) and the loss history (every 10% of the steps)."""
    if s.lfc_weight > 0 and surrogate is None:
        raise ValueError("LFC (lfc_weight > 0) needs a surrogate classifier")
    with global_rng(stream_seed(seed, "dh/init")):
        net = HidingNetwork(s.blocks, s.width, s.dense_layers).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=s.lr, betas=ADAM_BETAS, eps=1e-6, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(s.steps, max(1, int(WARMUP * s.steps))))
    gen = generator(seed, "dh/batches")
    num_classes = int(labels.max()) + 1
    members = [(labels == c).nonzero().flatten() for c in range(num_classes)]
    members = [m for m in members if len(m)]
    classes_per_batch = min(s.classes_per_batch, len(members))
    history: dict[str, list[float]] = {k: [] for k in ("step", "conceal", "reveal", "low", "lfc")}
    sums = torch.zeros(4)
    every = max(1, s.steps // 10)
    for step in progress(range(s.steps), desc="dh hiding network", leave=False):
        idx = class_balanced_batch(members, classes_per_batch, s.per_class, gen)
        cover, secret = _to_unit(covers[idx], device), _to_unit(secrets[assignment[idx]], device)
        cover_bands = dwt(cover)
        stego_bands, lost = net.forward_bands(cover_bands, dwt(secret))
        stego = iwt(stego_bands)
        if s.eps > 0:  # train under the bound the protected set will have, so the secret survives it
            stego = cover + bounded(stego - cover, s.eps)
            stego_bands = dwt(stego)
        z = s.reveal_noise * torch.randn(lost.shape, generator=gen).to(device)  # the receiver does not have r (HiNet)
        received = dwt(random_distortion(stego, gen)) if s.distortion == "filters" else stego_bands
        revealed = iwt(net.reverse_bands(received, z)[1])
        conceal = F.mse_loss(stego, cover)
        reveal = F.mse_loss(revealed, secret)
        low = low_frequency_mse(stego_bands, cover_bands)
        loss = CONCEAL_WEIGHT * conceal + REVEAL_WEIGHT * reveal + s.low_weight * low
        if s.detail_weight > 0:
            loss = loss + s.detail_weight * detail_mse(stego_bands, cover_bands)
        lfc = torch.zeros((), device=device)
        if surrogate is not None and s.lfc_weight > 0:
            lfc = lfc_loss(last_conv_features(surrogate, stego - cover), labels[idx].to(device))
            loss = loss + s.lfc_weight * lfc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
        opt.step()
        sched.step()
        sums += torch.stack([conceal, reveal, low, lfc]).detach().cpu()
        if (step + 1) % every == 0 or step + 1 == s.steps:
            count = (step % every) + 1
            history["step"].append(step + 1)
            for key, value in zip(("conceal", "reveal", "low", "lfc"), (sums / count).tolist()):
                history[key].append(value)
            sums.zero_()
    if not all(math.isfinite(v) for v in history["conceal"] + history["reveal"]):
        raise RuntimeError(f"hiding-network training diverged: {history}")
    return net.eval().requires_grad_(False), history


@torch.no_grad()
def hide_all(
    net: HidingNetwork,
    covers: torch.Tensor,
    secrets: torch.Tensor,
    assignment: torch.Tensor,
    eps: float,
    device: torch.device,
    progress: Callable[..., Any],
    scale: float = 1.0,
) -> torch.Tensor:
    """uint8 stego images: cover i hiding `secrets[assignment[i]]`, the perturbation times `scale`, `bounded` by
    `eps` (in [0,1] units; 0: unbounded), then rounded and clipped to [0, 255]."""
    out = torch.empty_like(covers)
    for sl in batches(len(covers), HIDE_BATCH, progress, "dh hiding"):
        cover = _to_unit(covers[sl], device)
        stego, _ = net.hide(cover, _to_unit(secrets[assignment[sl]], device))
        residual = stego - cover if scale == 1 else (stego - cover) * scale
        out[sl] = quantize(covers[sl], bounded(residual, eps).cpu(), eps or None)
    return out


def measured_subset(n: int) -> torch.Tensor:
    """Evenly spaced indices of at most MEASURE_LIMIT of n images."""
    return torch.linspace(0, n - 1, min(n, MEASURE_LIMIT)).round().long().unique()


@torch.no_grad()
def reveal_psnr(
    net: HidingNetwork, stego: torch.Tensor, secrets: torch.Tensor, noise: float, gen: torch.Generator,
    device: torch.device,
) -> float:
    """Mean PSNR (dB) of the secrets revealed from uint8 stego images, with Gaussian noise of std
    `noise` standing in for the lost branch r."""
    bands = dwt(_to_unit(stego, device))
    z = noise * torch.randn(bands.shape, generator=gen).to(device)
    revealed = iwt(net.reverse_bands(bands, z)[1]).clamp(0, 1)
    mse = (revealed - _to_unit(secrets, device)).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1 / mse)).mean().item()


@torch.no_grad()
def perturbation_spread(
    surrogate: torch.nn.Module, covers: torch.Tensor, protected: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """Within- and between-class mean cosine distance of the surrogate's last-conv features of the
    perturbations protected − covers (uint8 sets)."""
    device = next(surrogate.parameters()).device
    delta = (protected.float() - covers.float()).div_(255).to(device)
    return feature_spread(last_conv_features(surrogate, delta), labels)
