"""Perturbation size of a protected set: L∞, L2, L0, PSNR, SSIM."""
from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 2048


def _chunks(clean: torch.Tensor, protected: torch.Tensor):
    if clean.shape != protected.shape:
        raise ValueError(f"shape mismatch: clean {tuple(clean.shape)} vs protected {tuple(protected.shape)}")
    for i in range(0, len(clean), CHUNK):
        yield clean[i : i + CHUNK].float() / 255, protected[i : i + CHUNK].float() / 255


def per_image_norms(clean: torch.Tensor, protected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L∞ and L2 (in [0,1] pixel units) and L0 (changed pixel positions) of uint8 sets."""
    linf, l2, l0, mse = [], [], [], []
    for c, p in _chunks(clean, protected):
        d = (p - c).flatten(1)
        linf.append(d.abs().amax(1))
        l2.append(d.norm(dim=1))
        l0.append(((p - c).abs().amax(1) > 0).flatten(1).sum(1))
        mse.append(d.pow(2).mean(1))
    return {k: torch.cat(v) for k, v in dict(linf=linf, l2=l2, l0=l0, mse=mse).items()}


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(clean: torch.Tensor, protected: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 11, σ 1.5, per channel) between two uint8 sets."""
    w = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    total, count = 0.0, 0
    for x, y in _chunks(clean, protected):
        mu_x, mu_y = F.conv2d(x, w, groups=3), F.conv2d(y, w, groups=3)
        sxx = F.conv2d(x * x, w, groups=3) - mu_x**2
        syy = F.conv2d(y * y, w, groups=3) - mu_y**2
        sxy = F.conv2d(x * y, w, groups=3) - mu_x * mu_y
        s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
        total += s.mean(dim=(1, 2, 3)).sum().item()
        count += len(x)
    return total / count


def perturbation_metrics(clean: torch.Tensor, protected: torch.Tensor) -> dict[str, float | None]:
    """Summary of how far a protected set is from its clean original."""
    n = per_image_norms(clean, protected)
    changed = n["mse"] > 0
    psnr = (10 * torch.log10(1 / n["mse"][changed])).mean().item() if changed.any() else None
    return {
        "linf": n["linf"].max().item(),
        "l2_mean": n["l2"].mean().item(),
        "l2_max": n["l2"].max().item(),
        "l0_mean": n["l0"].float().mean().item(),
        "l0_max": int(n["l0"].max().item()),
        "psnr": psnr,  # mean over changed images; None when nothing changed
        "ssim": ssim(clean, protected),
        "changed_fraction": changed.float().mean().item(),
    }
