"""The `diffusers` semantic source: Stable Diffusion + ControlNet-Canny from local weights, one class edge
map as the control image of every semantic image of that class, a different seed per image (texture)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

INSTALL_HINT = "pip install 'uebench[sd]' (transformers, for Stable Diffusion's text encoder)"


@dataclass(frozen=True)
class DiffusionSettings:
    """Where the weights are (diffusers folders) and how to sample."""

    sd_path: str  # a Stable Diffusion pipeline folder (model_index.json, unet/, vae/, text_encoder/, ...)
    controlnet_path: str  # a ControlNet folder trained on Canny edges (config.json + weights)
    prompt: str
    steps: int
    resolution: int  # sampling size in pixels; the images are then resized to the dataset's


def diffusion_images(
    settings: DiffusionSettings, edges: torch.Tensor, per_class: int, size: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` images for each class edge map in `edges` (C×R×R in {0, 1}): uint8 N×3×size×size and labels."""
    for label, path in (("sd_path", settings.sd_path), ("controlnet_path", settings.controlnet_path)):
        if not path or not Path(path).expanduser().is_dir():
            raise FileNotFoundError(f"semantic_source=diffusers: {label}={path!r} is not a folder of diffusers weights")
    try:
        import transformers  # noqa: F401  (the pipeline's text encoder and tokenizer)
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    except ImportError as exc:
        raise ImportError(f"semantic_source=diffusers needs {INSTALL_HINT}: {exc}") from exc
    controlnet = ControlNetModel.from_pretrained(Path(settings.controlnet_path).expanduser(), local_files_only=True)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        Path(settings.sd_path).expanduser(), controlnet=controlnet, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True,
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    images = []
    for c, edge in enumerate(edges):
        control = edge.expand(3, -1, -1)[None].to(device)
        for i in range(per_class):
            gen = torch.Generator(device).manual_seed(seed * 1_000_003 + c * 1_009 + i)
            out = pipe(settings.prompt, image=control, num_inference_steps=settings.steps, generator=gen,
                       height=settings.resolution, width=settings.resolution, output_type="pt").images
            images.append(F.interpolate(out.float().cpu(), size=(size, size), mode="bilinear", antialias=True)[0])
    labels = torch.arange(len(edges)).repeat_interleave(per_class)
    return (torch.stack(images).clamp(0, 1) * 255).round().to(torch.uint8), labels
