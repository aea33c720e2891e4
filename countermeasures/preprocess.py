"""Pre-processing countermeasures: most transform the whole training set once before training."""
from __future__ import annotations

import io
from dataclasses import dataclass

import kornia.filters
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from benchmark.plugins import Context, Countermeasure
from benchmark.registry import register_countermeasure

CHUNK = 5000  # images per float chunk: bounds memory (~60 MB) on the full 50k set


@dataclass
class ImageFilter(Countermeasure):
    """A deterministic image operation applied once to the whole set, chunk by chunk on the device."""

    family = "pre-processing"

    def filter(self, x: torch.Tensor) -> torch.Tensor:
        """The operation on a float batch in [0, 1] (N×3×H×W, same shape out)."""
        raise NotImplementedError

    def filter_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """The operation on a uint8 batch: `filter` in float, rounded back (override for exact integer work)."""
        return self.filter(images.float().div_(255)).mul_(255).round_().clamp_(0, 255).to(torch.uint8)

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        out = torch.empty_like(images)
        for start in range(0, len(images), CHUNK):
            out[start : start + CHUNK] = self.filter_uint8(images[start : start + CHUNK].to(ctx.device)).cpu()
        return out


def _check_odd_kernel(name: str, size: int) -> None:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"{name} kernel must be an odd number of pixels >= 1, got {size}")


@register_countermeasure("gaussian_blur")
@dataclass
class GaussianBlur(ImageFilter):
    """Gaussian blur, kernel 3×3, σ 1.0, reflected border (kornia)."""

    kernel: int = 3
    sigma: float = 1.0

    def __post_init__(self) -> None:
        _check_odd_kernel("gaussian_blur", self.kernel)
        if not self.sigma > 0:
            raise ValueError(f"gaussian_blur sigma must be > 0 pixels, got {self.sigma}")

    def filter(self, x: torch.Tensor) -> torch.Tensor:
        return kornia.filters.gaussian_blur2d(x, self.kernel, (self.sigma, self.sigma))


# Compare-exchanges (i, j): v[i] gets the smaller, v[j] the larger; the median of 9 ends at index 4.
MEDIAN9_EXCHANGES = [
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
]


@register_countermeasure("median_filter")
@dataclass
class MedianFilter(ImageFilter):
    """Median filter, 3×3 window per channel, reflected border (as kornia's median_blur, on uint8)."""

    def filter_uint8(self, images: torch.Tensor) -> torch.Tensor:
        # A sorting network of min/max on uint8 is exact and ~6× faster than kornia's float median_blur,
        # which would take most of the one-minute budget on the full training set on 2 CPU cores.
        h, w = images.shape[-2:]
        rows = torch.tensor([1, *range(h), h - 2], device=images.device)  # reflect padding by one pixel
        cols = torch.tensor([1, *range(w), w - 2], device=images.device)
        padded = images[..., rows, :][..., cols]
        v = [padded[..., dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
        for i, j in MEDIAN9_EXCHANGES:
            v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
        return v[4].contiguous()


@register_countermeasure("mean_filter")
@dataclass
class MeanFilter(ImageFilter):
    """Mean (box) filter, 3×3 window per channel, reflected border (kornia)."""

    kernel: int = 3

    def __post_init__(self) -> None:
        _check_odd_kernel("mean_filter", self.kernel)

    def filter(self, x: torch.Tensor) -> torch.Tensor:
        return kornia.filters.box_blur(x, self.kernel)


@register_countermeasure("bit_depth")
@dataclass
class BitDepth(Countermeasure):
    """Bit-depth reduction (BDR): keep the top `bits` bits of each channel (2: levels 0, 64, 128, 192).

    What ISS and APBench run, torchvision's `RandomPosterize(bits=2, p=1)`: the low 8 − bits bits are
    cleared, a floor to multiples of 2^(8 − bits): at 2 bits 255 becomes 192 and a pixel drops by 0 to 63/255.
    (Version 1 rounded to 2^bits evenly spaced levels, 0, 85, 170, 255, instead.)"""

    version = "2"

    bits: int = 2
    family = "pre-processing"

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 8:
            raise ValueError(f"bit_depth bits must be in 1..8 bits per channel, got {self.bits}")

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        mask = (0xFF << (8 - self.bits)) & 0xFF  # the top `bits` bits of a byte
        return images & mask


@register_countermeasure("grayscale")
@dataclass
class Grayscale(Countermeasure):
    """ISS-G: ITU-R 601-2 luma exactly as PIL's convert('L'), replicated to three identical channels."""

    family = "pre-processing"

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        r, g, b = images.int().unbind(1)
        luma = ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16).to(torch.uint8)  # PIL's fixed-point weights
        return luma[:, None].expand_as(images).contiguous()


@register_countermeasure("jpeg10")
@dataclass
class Jpeg(Countermeasure):
    """ISS-J: JPEG compression at quality 10 and back (PIL's encoder, as ISS)."""

    quality: int = 10
    family = "pre-processing"

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {self.quality}")

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        hwc = images.permute(0, 2, 3, 1).numpy()
        out = np.empty_like(hwc)
        for i in ctx.progress(range(len(hwc)), desc=f"jpeg q{self.quality}", leave=False, mininterval=1):
            buffer = io.BytesIO()
            Image.fromarray(hwc[i]).save(buffer, format="JPEG", quality=self.quality)
            out[i] = np.asarray(Image.open(buffer).convert("RGB"))
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@register_countermeasure("jpeg50")
@dataclass
class Jpeg50(Jpeg):
    """JPEG compression at quality 50 and back (PIL's encoder)."""

    quality: int = 50


@register_countermeasure("gaussian_noise")
@dataclass
class GaussianNoise(Countermeasure):
    """Additive Gaussian noise N(0, σ²), σ = 8/255, drawn afresh for every batch, clamped to [0, 1]."""

    std: float = 8.0  # in 1/255 units
    family = "pre-processing"

    def __post_init__(self) -> None:
        if not 0 <= self.std <= 255:
            raise ValueError(f"gaussian_noise std must be in [0, 255] (units of 1/255), got {self.std}")

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return x.add(noise, alpha=self.std / 255).clamp_(0, 1), y


@register_countermeasure("resize")
@dataclass
class Resize(ImageFilter):
    """Down-sample ×0.5 (bilinear, antialiased, as PIL) and back up (bilinear): drops the top octave of detail."""

    scale: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.scale < 1:
            raise ValueError(f"resize scale must be in (0, 1) (a down-sampling factor), got {self.scale}")

    def filter(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = TF.resize(x, [max(1, round(h * self.scale)), max(1, round(w * self.scale))], antialias=True)
        return TF.resize(small, [h, w], antialias=True)
