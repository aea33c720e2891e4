"""Galleries of a protected set: for the first classes, the first few training images of each class shown clean,
protected and as their perturbation amplified to full range, as one PNG grid (one row per class)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from .tables import safe_name

GALLERY_DIR = "gallery"  # beside a run's results.jsonl (or a published rows file)
PANELS = ("clean", "protected", "perturbation")
LABEL_W = 76  # the class-name column, left
HEADER_H = 16  # the panel-name row, top
GAP = 2  # between panels, and after each row
GROUP_GAP = 8  # between one image's three panels and the next image's
MID_GREY = 128  # an unchanged pixel in the perturbation panel
BACKGROUND = (255, 255, 255)


def gallery_name(label: str, seed: int) -> str:
    """The gallery's file name for a method configuration label (`dh[lfc_weight=0]`) and a seed."""
    return f"{safe_name(label)}-seed{seed}.png"


def first_per_class(labels: torch.Tensor, classes: int, per_class: int) -> list[list[int]]:
    """Positions of the first `per_class` images of each class 0..classes-1 (fewer where a class has fewer)."""
    return [(labels == c).nonzero().flatten()[:per_class].tolist() for c in range(classes)]


def amplify(clean: torch.Tensor, protected: torch.Tensor) -> torch.Tensor:
    """The perturbation δ = protected − clean of uint8 N×C×H×W images as uint8: 128 + 127·δ/max|δ|, the max taken
    over each image (all channels), so grey is unchanged, lighter a raised value and darker a lowered one; 128
    everywhere for an image left as it was."""
    delta = protected.to(torch.int16) - clean.to(torch.int16)
    peak = delta.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1)
    return (MID_GREY + torch.round(127 * delta.float() / peak)).to(torch.uint8)


def panel_origin(row: int, image: int, panel: int, width: int, height: int) -> tuple[int, int]:
    """Top-left pixel of a panel (0 clean, 1 protected, 2 perturbation) of the `image`-th image of the `row`-th
    class, for panels `width`×`height` pixels large."""
    x = LABEL_W + image * (len(PANELS) * (width + GAP) + GROUP_GAP) + panel * (width + GAP)
    return x, HEADER_H + row * (height + GAP)


def gallery_size(classes: int, per_class: int, width: int, height: int) -> tuple[int, int]:
    """Width and height in pixels of a gallery of `classes` rows and `per_class` images per row."""
    x, _ = panel_origin(0, per_class - 1, len(PANELS) - 1, width, height)
    _, y = panel_origin(classes, 0, 0, width, height)
    return x + width + GAP, y


def _fit(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str, width: int) -> str:
    """`text` cut to what fits in `width` pixels."""
    while text and font.getlength(text) > width:
        text = text[:-1]
    return text


def draw_gallery(clean: torch.Tensor, protected: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                 per_class: int = 2, max_classes: int = 10, scale: int = 2) -> Image.Image:
    """The gallery of uint8 N×3×H×W `clean` and `protected` images with their labels: the first `max_classes`
    classes, the first `per_class` images of each, every panel upscaled `scale`× (nearest neighbour)."""
    if clean.shape != protected.shape or clean.dtype != torch.uint8 or protected.dtype != torch.uint8:
        raise ValueError(f"clean and protected must be uint8 images of one shape, got {clean.dtype} "
                         f"{tuple(clean.shape)} and {protected.dtype} {tuple(protected.shape)}")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    classes = min(len(class_names), max_classes)
    chosen = first_per_class(labels, classes, per_class)
    width, height = clean.shape[3] * scale, clean.shape[2] * scale
    canvas = Image.new("RGB", gallery_size(classes, per_class, width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for image in range(per_class):
        for panel, name in enumerate(PANELS):
            x, _ = panel_origin(0, image, panel, width, height)
            draw.text((x, 2), _fit(font, name, width), fill=(0, 0, 0), font=font)
    for row, positions in enumerate(chosen):
        _, y = panel_origin(row, 0, 0, width, height)
        draw.text((2, y + height // 2 - 6), _fit(font, class_names[row], LABEL_W - 4), fill=(0, 0, 0), font=font)
        if not positions:
            continue
        index = torch.tensor(positions)
        panels = (clean[index], protected[index], amplify(clean[index], protected[index]))
        for image in range(len(positions)):
            for panel, pixels in enumerate(panels):
                array = pixels[image].permute(1, 2, 0).numpy()
                tile = Image.fromarray(np.ascontiguousarray(array)).resize((width, height), Image.NEAREST)
                canvas.paste(tile, panel_origin(row, image, panel, width, height))
    return canvas


SET_KEY = "uebench-set-key"  # PNG text chunk: the cache key of the protected set the gallery shows


def gallery_key(path: str | os.PathLike) -> str | None:
    """The set key a saved gallery records (None for a missing or unreadable file, or one without a key)."""
    try:
        with Image.open(path) as image:
            return image.text.get(SET_KEY)
    except (OSError, ValueError):
        return None


def write_gallery(path: str | os.PathLike, clean: torch.Tensor, protected: torch.Tensor, labels: torch.Tensor,
                  class_names: Sequence[str], per_class: int = 2, set_key: str | None = None) -> Path:
    """Draw the gallery (`draw_gallery`) and save it as a PNG at `path`, written whole or not at all; `set_key`
    (the protected set's cache key) is stored in the file so that a changed set is drawn again."""
    image = draw_gallery(clean, protected, labels, class_names, per_class)
    info = PngImagePlugin.PngInfo()
    if set_key:
        info.add_text(SET_KEY, set_key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a plain open (not the cache's mkstemp, which makes files 0600): a picture to publish gets the umask's mode
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, format="PNG", optimize=True, pnginfo=info)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
