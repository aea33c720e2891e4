"""A victim built the way the fastest CIFAR-10 trainers build theirs (Keller Jordan's airbench, 2024): a frozen
patch-whitening first layer, three conv-pool-BN-GELU blocks, a max-pooled linear head and flip averaging at test
time."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model


class PatchWhitening(nn.Module):
    """A 2×2 convolution that whitens image patches: on the first batch it sees in training mode (or given to
    `fit_once`), its filters become the eigenvectors of that batch's 2×2-patch covariance over the square root of
    their eigenvalues, and their negatives; then they stay frozen (the bias trains)."""

    def __init__(self, eps: float = 5e-4) -> None:
        super().__init__()
        self.eps = eps
        self.conv = nn.Conv2d(3, 24, 2, bias=True)
        self.conv.weight.requires_grad_(False)
        self.fitted = False  # a Python flag: reading a device tensor every step would sync the GPU (and break capture)

    @torch.no_grad()
    def fit_once(self, x: torch.Tensor) -> None:
        """Fit the filters to the patches of `x` (N×3×H×W in [0, 1]), unless fitted already."""
        if self.fitted:
            return
        patches = x.float().unfold(2, 2, 1).unfold(3, 2, 1)  # N×3×H'×W'×2×2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
        patches = patches - patches.mean(0)
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (vectors.T / (values.clamp_min(0) + self.eps).sqrt()[:, None]).flip(0)  # largest first
        filters = filters.reshape(12, 3, 2, 2).to(self.conv.weight)
        self.conv.weight.copy_(torch.cat([filters, -filters]))
        self.fitted = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.fitted:
            self.fit_once(x)
        return self.conv(x)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU(),
    )


class AirbenchNet(nn.Module):
    """Whitening, GELU, blocks of 64, 256 and 256 channels (31 → 15 → 7 → 3 px), global max pool, a linear head
    without bias scaled by 1/9; in eval mode the logits of the image and its mirror image are averaged."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256)) -> None:
        super().__init__()
        self.features = nn.Sequential(PatchWhitening(), nn.GELU(), _block(24, widths[0]), _block(widths[0], widths[1]),
                                      _block(widths[1], widths[2]))
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.amax(self.features(x), dim=(2, 3))) / 9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self._logits(x)
        # One pass over image and mirror image: a module called twice would be folded twice (benchmark/folding.py).
        both = self._logits(torch.cat([x, x.flip(-1)]))
        return (both[: len(x)] + both[len(x):]) / 2


@register_model("airbench")
def airbench(num_classes: int = 10) -> nn.Module:
    """airbench94's network (whitening 2×2 conv fitted to the first batch, 64-256-256 conv blocks, GELU, max-pooled
    head, flip averaging in eval), ~1.97M parameters; the trainer's recipe stays the preset's."""
    return AirbenchNet(num_classes)
