"""Colour-domain pre-processing defences as the DUNE harness (Wang et al., ICML 2026) runs them: per image, after crop
and flip, every batch; each removes a per-image colour offset or stretch, the kind of shortcut a class-wise colour
shift plants. Beyond the paper's protocol: in the `extra` suite."""
from __future__ import annotations

from dataclasses import dataclass

import kornia.color as KC
import torch

from benchmark.plugins import Countermeasure
from benchmark.registry import register_countermeasure

from .uint8_grid import to_uint8_grid


def stretch(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """`x` min-max stretched to [0, 1] over `dims` of each image (a flat image is left at 0)."""
    low, high = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    return (x - low) / (high - low).clamp_min(1e-12)


@register_countermeasure("channel_norm")
@dataclass
class ChannelNorm(Countermeasure):
    """Per-image channel normalisation: each channel standardised, then one min-max over the three to [0, 1]."""

    family = "pre-processing"
    suite = "extra"

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), unbiased=False, keepdim=True)
        z = (x - mean) / torch.where(std < 1e-6, torch.ones_like(std), std)
        return to_uint8_grid(stretch(z, (1, 2, 3)), rounding=False), y


def equalize_channels(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's `equalizeHist` on every channel of every image (float on the 1/255 grid in, the same out): the first
    occupied level goes to 0, each level above to 255 × (pixels above the first level up to it) / (pixels above it)."""
    b, c, h, w = x.shape
    levels = (x * 255).round().long().reshape(b * c, h * w)  # the training loop's crop gives an NHWC-strided batch
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, levels, torch.ones_like(levels))
    first = (hist > 0).float().argmax(1, keepdim=True)  # the lowest occupied level
    at_first = hist.gather(1, first)
    above = hist.cumsum(1) - at_first  # pixels above the first level, up to each level
    scale = 255.0 / (h * w - at_first).clamp_min(1).float()
    lut = (above.float() * scale).round().clamp(0, 255)
    lut = torch.where(torch.arange(256, device=x.device) < first, torch.zeros_like(lut), lut)
    out = lut.gather(1, levels) / 255
    flat = at_first == h * w  # a single level: left where it is
    out = torch.where(flat, levels.float() / 255, out)
    return out.view(b, c, h, w)


@register_countermeasure("histeq")
@dataclass
class HistogramEqualisation(Countermeasure):
    """Histogram equalisation of each RGB channel of each image, as OpenCV's equalizeHist."""

    family = "pre-processing"
    suite = "extra"

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return equalize_channels(to_uint8_grid(x)), y


def lab_8bit(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to OpenCV's 8-bit LAB scaled to [0, 1]: L·255/100, a + 128, b + 128, rounded."""
    lab = KC.rgb_to_lab(x)
    return to_uint8_grid(torch.stack([lab[:, 0] / 100, (lab[:, 1] + 128) / 255, (lab[:, 2] + 128) / 255], 1))


def _lab_8bit_to_rgb(v: torch.Tensor) -> torch.Tensor:
    lab = torch.stack([v[:, 0] * 100, v[:, 1] * 255 - 128, v[:, 2] * 255 - 128], 1)
    return to_uint8_grid(KC.lab_to_rgb(lab, clip=True))


def yuv_8bit(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to OpenCV's 8-bit YUV (BT.601, U and V offset by 128), scaled to [0, 1], rounded."""
    yuv = KC.rgb_to_yuv(x)
    return to_uint8_grid(torch.stack([yuv[:, 0], yuv[:, 1] + 128 / 255, yuv[:, 2] + 128 / 255], 1))


def _yuv_8bit_to_rgb(v: torch.Tensor) -> torch.Tensor:
    yuv = torch.stack([v[:, 0], v[:, 1] - 128 / 255, v[:, 2] - 128 / 255], 1)
    return to_uint8_grid(KC.yuv_to_rgb(yuv))


@dataclass
class _Whitening(Countermeasure):
    """Shared by the LAB and YUV whitenings: to the colour space (8-bit), each channel standardised and min-max
    stretched on its own (together: a per-channel min-max stretch), 8-bit, and back to RGB."""

    family = "pre-processing"
    suite = "extra"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.encode(to_uint8_grid(x))
        return self.decode(to_uint8_grid(stretch(v, (2, 3)), rounding=False)), y


@register_countermeasure("lab_whiten")
@dataclass
class LabWhitening(_Whitening):
    """LAB whitening: each image's L, a and b channels stretched to their full 8-bit range, back to RGB."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return lab_8bit(x)

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        return _lab_8bit_to_rgb(v)


@register_countermeasure("yuv_whiten")
@dataclass
class YuvWhitening(_Whitening):
    """YUV whitening: each image's Y, U and V channels stretched to their full 8-bit range, back to RGB."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return yuv_8bit(x)

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        return _yuv_8bit_to_rgb(v)
