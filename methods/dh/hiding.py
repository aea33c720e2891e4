"""The hiding network: Haar DWT + invertible affine-coupling blocks with dense subnets (HiNet-style).

The forward pass hides a secret image in a cover image and returns the stego image (and the
"lost" branch r, which the receiver does not have); the reverse pass takes a stego image and a
stand-in for r and reveals the secret. The blocks are exactly invertible for any weights.
"""
from __future__ import annotations

import torch
from torch import nn

CLAMP = 2.0  # HiNet's bound on the log-scale of the affine coupling
DENSE_LAYERS = 5  # HiNet's residual dense block: 4 growing conv layers + 1 output conv


def dwt(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal one-level Haar transform: B×C×H×W → B×4C×H/2×W/2, bands [LL, HL, LH, HH], each C channels."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([a + b + c + d, -a + b - c + d, -a - b + c + d, a - b - c + d], 1) / 2


def iwt(y: torch.Tensor) -> torch.Tensor:
    """Inverse of `dwt`."""
    ll, hl, lh, hh = y.chunk(4, 1)
    b, ch, h, w = ll.shape
    x = y.new_empty(b, ch, 2 * h, 2 * w)
    x[..., 0::2, 0::2] = (ll - hl - lh + hh) / 2
    x[..., 0::2, 1::2] = (ll + hl - lh - hh) / 2
    x[..., 1::2, 0::2] = (ll - hl + lh - hh) / 2
    x[..., 1::2, 1::2] = (ll + hl + lh + hh) / 2
    return x


class DenseSubnet(nn.Module):
    """Residual-dense-block subnet: each 3×3 conv sees the input and every earlier layer's output;
    the output conv starts at zero, so a fresh coupling block is the identity."""

    def __init__(self, cin: int, cout: int, width: int, layers: int = DENSE_LAYERS) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(nn.Conv2d(cin + i * width, width, 3, padding=1) for i in range(layers - 1))
        self.out = nn.Conv2d(cin + (layers - 1) * width, cout, 3, padding=1)
        self.act = nn.LeakyReLU(inplace=True)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.hidden:
            feats.append(self.act(conv(torch.cat(feats, 1))))
        return self.out(torch.cat(feats, 1))


class CouplingBlock(nn.Module):
    """Affine coupling of a cover branch x1 and a secret branch x2:
    y1 = x1 + φ(x2),  y2 = x2 · exp(s(y1)) + η(y1),  s = clamp · (2σ(ρ(y1)) − 1)."""

    def __init__(self, channels: int, width: int, layers: int = DENSE_LAYERS, clamp: float = CLAMP) -> None:
        super().__init__()
        self.clamp = clamp
        self.phi = DenseSubnet(channels, channels, width, layers)
        self.rho = DenseSubnet(channels, channels, width, layers)
        self.eta = DenseSubnet(channels, channels, width, layers)

    def _log_scale(self, y1: torch.Tensor) -> torch.Tensor:
        return self.clamp * (2 * torch.sigmoid(self.rho(y1)) - 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = x1 + self.phi(x2)
        return y1, x2 * torch.exp(self._log_scale(y1)) + self.eta(y1)

    def reverse(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact inverse of `forward`."""
        x2 = (y2 - self.eta(y1)) * torch.exp(-self._log_scale(y1))
        return y1 - self.phi(x2), x2


class HidingNetwork(nn.Module):
    """`blocks` coupling blocks on the Haar bands of 3-channel images (12 channels per branch)."""

    def __init__(self, blocks: int, width: int, layers: int = DENSE_LAYERS, image_channels: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(CouplingBlock(4 * image_channels, width, layers) for _ in range(blocks))

    def forward_bands(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cover and secret bands → stego bands and the lost branch r."""
        for block in self.blocks:
            x1, x2 = block(x1, x2)
        return x1, x2

    def reverse_bands(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stego bands and r → cover and secret bands (exact inverse of `forward_bands`)."""
        for block in reversed(self.blocks):
            y1, y2 = block.reverse(y1, y2)
        return y1, y2

    def hide(self, cover: torch.Tensor, secret: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0,1] → the stego image (not clipped) and the lost branch r (bands)."""
        stego, lost = self.forward_bands(dwt(cover), dwt(secret))
        return iwt(stego), lost

    def reveal(self, stego: torch.Tensor, lost: torch.Tensor) -> torch.Tensor:
        """The secret revealed from a stego image, with `lost` standing in for r (HiNet: Gaussian noise)."""
        return iwt(self.reverse_bands(dwt(stego), lost)[1])
