"""Semantic image generation (SIG): the images DH hides, a few per class, from one of three sources.

`procedural` (default, embedded): every class gets one global shape, chosen from a pool of random
shapes so that the classes lie far apart, rendered with many textures and colours plus its edge
outline; images of one class share the shape and differ in texture. This stands in for the paper's
Stable Diffusion + ControlNet-Canny images (same edge map per class, varied local texture).
`folder`: the user's own images, an ImageFolder tree with one sub-folder per class.
`diffusers`: the paper's route, from local weights (`diffusion_sig.py`), conditioned on the edge maps
of the same far-apart class shapes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.data import load_image_folder

from .diffusion_sig import DiffusionSettings, diffusion_images

SOURCES = ("procedural", "folder", "diffusers")
SUPERSAMPLE = 4  # shapes are rendered at 4× the image size and area-averaged down (anti-aliasing)
POOL_PER_CLASS = 8  # candidate shapes per class the far-apart selection picks from
SELECTION_SIZE = 16  # resolution of the shape descriptors the selection compares
CURVE_SAMPLES = 48  # points per stroke when rendering its distance field
HARMONICS = torch.arange(2, 8, dtype=torch.float32)  # of the contour's radius as a function of angle
MIN_CONTRAST = 0.35  # luminance gap between a shape's mean colour and its background's


def semantic_images(
    source: str, num_classes: int, per_class: int, size: int, seed: int, folder: str = "",
    diffusion: DiffusionSettings | None = None, device: torch.device = torch.device("cpu"), outline: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Semantic images (uint8 N×3×size×size) and their class labels from `source` (`outline`: procedural shapes
    get their edge drawn)."""
    if source == "procedural":
        return procedural_images(num_classes, per_class, size, seed, outline)
    if source == "folder":
        return folder_images(folder, num_classes, size)
    if source == "diffusers":
        if diffusion is None:
            raise ValueError("semantic_source=diffusers needs its settings (sd_path, controlnet_path, ...)")
        return diffusion_images(diffusion, class_edge_maps(num_classes, diffusion.resolution, seed), per_class, size,
                                seed, device)
    raise ValueError(f"unknown semantic source {source!r}; valid sources: {', '.join(SOURCES)}")


def folder_images(folder: str, num_classes: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of an ImageFolder tree with exactly `num_classes` sub-folders (sorted order = class
    index), resized on the short side and centre-cropped to size×size."""
    root = Path(folder).expanduser() if folder else None
    if root is None or not root.is_dir():
        raise FileNotFoundError(
            f"semantic image folder {folder!r} does not exist; pass semantic_folder=PATH, a folder with one "
            f"sub-folder of images per class ({num_classes} sub-folders, sorted order = class index)"
        )
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(found) != num_classes:
        raise ValueError(f"semantic image folder {root} has {len(found)} class sub-folders, the dataset {num_classes}")
    data = load_image_folder(root, num_classes, size)
    empty = [found[c] for c in range(num_classes) if not (data.labels == c).any()]
    if empty:
        raise ValueError(f"semantic image folder {root}: no images in {', '.join(empty)}")
    return data.images, data.labels


def procedural_images(
    num_classes: int, per_class: int, size: int, seed: int, outline: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` textured renderings of one far-apart shape per class, its edge drawn when `outline`;
    deterministic in `seed`."""
    gen = torch.Generator().manual_seed(seed)
    hi = size * SUPERSAMPLE
    images = []
    for shape in class_shapes(num_classes, gen):
        mask = shape.rasterize(hi)
        edge = edge_map(mask, max(1, hi // 48)) if outline else torch.zeros_like(mask)
        images += [render(mask, edge, gen) for _ in range(per_class)]
    lowres = F.avg_pool2d(torch.stack(images), SUPERSAMPLE)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return (lowres * 255).round().clamp(0, 255).to(torch.uint8), labels


def class_shapes(num_classes: int, gen: torch.Generator) -> list[Shape]:
    """One shape per class, picked far apart from a random pool."""
    pool = [Shape.random(gen) for _ in range(POOL_PER_CLASS * num_classes)]
    masks = torch.stack([shape.rasterize(SELECTION_SIZE * SUPERSAMPLE) for shape in pool])
    descriptors = F.avg_pool2d(masks[:, None], SUPERSAMPLE).flatten(1)
    return [pool[i] for i in farthest_points(descriptors, num_classes, gen).tolist()]


def class_edge_maps(num_classes: int, resolution: int, seed: int) -> torch.Tensor:
    """The edge map (the paper's Canny map) of each class's shape: float C×resolution×resolution in {0, 1},
    the same shapes `procedural_images` renders for this seed."""
    shapes = class_shapes(num_classes, torch.Generator().manual_seed(seed))
    return torch.stack([edge_map(shape.rasterize(resolution), max(1, resolution // 96)) for shape in shapes])


def farthest_points(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of `k` rows of `x` picked greedily to maximize the minimum pairwise distance."""
    chosen = [int(torch.randint(len(x), (1,), generator=gen))]
    nearest = torch.cdist(x, x[chosen]).squeeze(1)
    for _ in range(k - 1):
        chosen.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, torch.cdist(x, x[chosen[-1:]]).squeeze(1))
    return torch.tensor(chosen)


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [0,1], as (y, x) n×n tensors."""
    t = (torch.arange(n) + 0.5) / n
    return torch.meshgrid(t, t, indexing="ij")


def _uniform(gen: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape or (1,), generator=gen)


@dataclass(frozen=True)
class Shape:
    """A glyph-like shape in the unit square: a smooth random closed contour XOR a few thick
    quadratic Bézier strokes."""

    centre: torch.Tensor  # (y, x)
    radius: float
    amplitudes: torch.Tensor  # of the radial harmonics HARMONICS
    phases: torch.Tensor
    strokes: tuple[tuple[torch.Tensor, float], ...]  # (3×2 control points, half-thickness)

    @classmethod
    def random(cls, gen: torch.Generator) -> Shape:
        """A shape with random contour harmonics and 1-3 random strokes."""
        centre = _uniform(gen, 0.4, 0.6, 2)
        radius = float(_uniform(gen, 0.2, 0.34))
        amplitudes = _uniform(gen, 0.0, 0.3, len(HARMONICS)) / HARMONICS.sqrt()
        phases = _uniform(gen, 0.0, 2 * math.pi, len(HARMONICS))
        count = int(torch.randint(1, 4, (1,), generator=gen))
        strokes = tuple((_uniform(gen, 0.1, 0.9, 3, 2), float(_uniform(gen, 0.03, 0.06))) for _ in range(count))
        return cls(centre, radius, amplitudes, phases, strokes)

    def rasterize(self, n: int) -> torch.Tensor:
        """The binary n×n mask (float) of the shape, sampled at pixel centres."""
        y, x = _grid(n)
        cy, cx = self.centre
        theta = torch.atan2(y - cy, x - cx)
        wobble = (self.amplitudes * torch.cos(HARMONICS * theta[..., None] + self.phases)).sum(-1)
        mask = torch.hypot(y - cy, x - cx) < self.radius * (1 + wobble).clamp_min(0.3)
        points = torch.stack([y.flatten(), x.flatten()], 1)
        t = torch.linspace(0, 1, CURVE_SAMPLES)[:, None]
        for (p0, p1, p2), half_width in self.strokes:
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
            mask ^= (torch.cdist(points, curve).amin(1) < half_width).view(n, n)
        return mask.float()


def edge_map(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Morphological gradient of a binary mask: a band of about `width` pixels along its edges
    (the role the paper's Canny edge map plays)."""
    m = mask[None, None]
    k = 2 * width + 1
    dilated = F.max_pool2d(m, k, 1, width)
    eroded = -F.max_pool2d(-m, k, 1, width)
    return (dilated - eroded)[0, 0]


def random_texture(n: int, gen: torch.Generator) -> torch.Tensor:
    """An n×n texture in [0,1]: oriented gratings, smooth value noise or a rotated checkerboard."""
    y, x = _grid(n)
    kind = int(torch.randint(3, (1,), generator=gen))
    angle = _uniform(gen, 0, math.pi)
    u = x * torch.cos(angle) + y * torch.sin(angle)
    v = -x * torch.sin(angle) + y * torch.cos(angle)
    if kind == 0:
        freq = _uniform(gen, 2, 9)
        t = torch.sin(2 * math.pi * freq * u + _uniform(gen, 0, 2 * math.pi))
        t = t + 0.5 * torch.sin(2 * math.pi * _uniform(gen, 2, 9) * v)
    elif kind == 1:
        cells = int(torch.randint(3, 9, (1,), generator=gen))
        noise = torch.randn(1, 1, cells, cells, generator=gen)
        t = F.interpolate(noise, size=(n, n), mode="bicubic", align_corners=False)[0, 0]
    else:
        freq = _uniform(gen, 2, 7)
        t = ((torch.floor(u * freq) + torch.floor(v * freq)) % 2).float()
    return (t - t.min()) / (t.max() - t.min()).clamp_min(1e-6)


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb * torch.tensor([0.299, 0.587, 0.114])).sum(-1)


def render(mask: torch.Tensor, outline: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One 3×n×n image in [0,1]: textured shape on a textured background of contrasting
    brightness, with the shape's edge drawn in black or white."""
    n = mask.shape[0]
    fg = torch.rand(3, generator=gen)
    while True:
        bg = torch.rand(3, generator=gen)
        if (_luminance(fg) - _luminance(bg)).abs() >= MIN_CONTRAST:
            break
    layers = []
    for colour in (fg, bg):
        second = (colour + _uniform(gen, -0.35, 0.35, 3)).clamp(0, 1)
        t = random_texture(n, gen)
        layers.append(colour[:, None, None] + (second - colour)[:, None, None] * t)
    image = mask * layers[0] + (1 - mask) * layers[1]
    ink = 0.0 if _luminance(fg) + _luminance(bg) > 1 else 1.0
    return image * (1 - outline) + ink * outline
