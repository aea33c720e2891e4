"""Purification countermeasures: a generative model, fitted once, rewrites every training image."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.evaluation import eval_batch
from benchmark.identity import CONTENT, tensor_digest
from benchmark.plugins import Context, Countermeasure
from benchmark.presets import Preset
from benchmark.registry import register_countermeasure
from benchmark.seeding import global_rng

INFER_BATCH = 250


def _for_preset(table: dict[str, Any], preset: Preset, what: str) -> Any:
    """The entry of a per-preset settings table for `preset`."""
    if preset.name not in table:
        raise ValueError(f"{what} has no settings for preset {preset.name!r}; presets with settings: {', '.join(table)}")
    return table[preset.name]


def _to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device).float().div_(255)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round_().to(torch.uint8).cpu()


# ---------------------------------------------------------------- D-VAE (Yu et al., ICML 2024)


@dataclass(frozen=True)
class DvaeScale:
    """Network width and training length of one D-VAE stage at one preset."""

    width: int
    latent_channels: int
    epochs: int
    batch_size: int


DVAE_SCALES = {
    "smoke": DvaeScale(width=16, latent_channels=4, epochs=4, batch_size=32),
    "quick": DvaeScale(width=32, latent_channels=8, epochs=8, batch_size=128),
    # The public code's recipe: 60 epochs per stage, batch 128 (its network is a ResNet-18 stem).
    "paper": DvaeScale(width=64, latent_channels=16, epochs=60, batch_size=128),
}
DVAE_LR = 5e-3  # Adam, cosine to zero, gradients clipped at norm 5, as the public code
DVAE_CLIP = 5.0
PERTURBATION_ENERGY = 0.002  # mean p̂² above this is penalised, from the first sixth of training on


class ResBlock(nn.Module):
    """Two 3×3 convolutions with SiLU, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _decoder(in_channels: int, width: int) -> nn.Sequential:
    """Half-resolution latent features to a full-resolution 3-channel map through a sub-pixel
    convolution: every layer runs at half resolution, a quarter of the cost on a CPU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), ResBlock(width), nn.SiLU(),
        nn.Conv2d(width, 12, 3, padding=1), nn.PixelShuffle(2),
    )


class DisentangleVAE(nn.Module):
    """A VAE with a Gaussian latent at half resolution and two decoders: the content decoder sees only
    the latent; the perturbation decoder also sees a learnable map per class, so class-correlated
    perturbations can be explained there without paying for them in the rate-constrained latent."""

    def __init__(self, num_classes: int, image_size: int, width: int, latent_channels: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(12, width, 3, padding=1), ResBlock(width), nn.SiLU(),
            nn.Conv2d(width, 2 * latent_channels, 1),
        )
        self.class_maps = nn.Parameter(torch.zeros(num_classes, latent_channels, image_size // 2, image_size // 2))
        self.content = _decoder(latent_channels, width)
        self.perturbation = _decoder(2 * latent_channels, width)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, perturbation estimate and KL (nats per latent position, batch mean); the
        latent is sampled with `gen`, or taken at its mean when `gen` is None."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-30, 20)
        z = mu if gen is None else mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=gen, device=mu.device)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        rec = torch.sigmoid(self.content(z))
        # A one-hot product rather than indexing: the backward of indexing accumulates with atomics on
        # several threads, which would make training, and the purified set, differ run to run.
        maps = (F.one_hot(y, len(self.class_maps)).to(z.dtype) @ self.class_maps.flatten(1)).view_as(z)
        pert = self.perturbation(torch.cat([z, maps], dim=1))
        return rec, pert, kl

    def strip(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The input minus its perturbation estimate."""
        return (x - self(x, y)[1]).clamp(0, 1)

    def reconstruct_stripped(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The reconstruction of the input minus its perturbation estimate."""
        return self(self.strip(x, y), y)[0]


@register_countermeasure("dvae")
@dataclass
class DVAE(Countermeasure):
    """D-VAE (Yu et al., ICML 2024): rate-constrained VAEs fitted on the protected set, two stages.

    Stage 1 fits a D-VAE at KL target `rate` and subtracts its perturbation estimate from every
    image; stage 2 fits a fresh D-VAE at KL target `rate2` on that result and outputs its
    reconstruction of (image − its perturbation estimate). Loss per stage:
    MSE(x̂, x) + MSE(clamp(x̂ + p̂), x) + kl_weight · max(KL, target) (+ the p̂ energy hinge).
    `epochs` per stage, 0: the preset's (smoke 4, quick 8, paper 60); `second_stage=false` stops
    after stage 1.
    """

    cost = 3.5
    version = "2"  # 2: the network and its inputs channels_last (speed; the rounding differs)

    rate: float = 1.0
    rate2: float = 3.0
    kl_weight: float = 0.01
    second_stage: bool = True
    epochs: int = 0
    family = "purification"
    cache_preprocess = True

    def __post_init__(self) -> None:
        for name in ("rate", "rate2", "kl_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"dvae {name} must be > 0, got {getattr(self, name)}")
        if self.epochs < 0:
            raise ValueError(f"dvae epochs must be >= 0 (0: the preset's), got {self.epochs}")

    def settings(self, preset: Preset) -> dict[str, Any]:
        scale = _for_preset(DVAE_SCALES, preset, "dvae")
        return {"epochs": self.epochs or scale.epochs, "network": dataclasses.asdict(scale), "lr": DVAE_LR,
                "clip": DVAE_CLIP, "perturbation_energy": PERTURBATION_ENERGY}

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        scale = _for_preset(DVAE_SCALES, ctx.preset, "dvae")
        x = _to_float(images, ctx.device)
        y = labels.to(ctx.device)
        stage1 = self._fit(x, y, self.rate, scale, ctx, stream=1)
        x = _batched(stage1.strip, x, y)
        if self.second_stage:
            stage2 = self._fit(x, y, self.rate2, scale, ctx, stream=2)
            x = _batched(stage2.reconstruct_stripped, x, y)
        return _to_uint8(x)

    def _fit(
        self, x: torch.Tensor, y: torch.Tensor, rate: float, scale: DvaeScale, ctx: Context, stream: int
    ) -> DisentangleVAE:
        """One D-VAE trained on float images `x` in [0,1] with KL target `rate`."""
        with ctx.fork_rng(f"dvae/init/{stream}"):
            model = DisentangleVAE(ctx.num_classes, x.shape[-1], scale.width, scale.latent_channels).to(
                ctx.device, memory_format=torch.channels_last)
        gen = ctx.generator(f"dvae/stage/{stream}", ctx.device)
        n = len(x)
        bs = min(scale.batch_size, n)
        steps = n // bs
        epochs = self.epochs or scale.epochs
        opt = torch.optim.Adam(model.parameters(), lr=DVAE_LR)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
        bar = ctx.progress(range(epochs), desc=f"dvae stage {stream}", unit="epoch", leave=False)
        for epoch in bar:
            order = torch.randperm(n, generator=gen, device=ctx.device)
            for i in range(steps):
                idx = order[i * bs : (i + 1) * bs]
                xb = x[idx].contiguous(memory_format=torch.channels_last)
                rec, pert, kl = model(xb, y[idx], gen)
                loss = F.mse_loss(rec, xb) + F.mse_loss((rec + pert).clamp(0, 1), xb)
                loss = loss + self.kl_weight * kl.clamp(min=rate)
                if epoch >= epochs / 6:
                    loss = loss + pert.pow(2).mean().clamp(min=PERTURBATION_ENERGY)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), DVAE_CLIP)
                opt.step()
                sched.step()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.4f}", kl=f"{kl.item():.2f}")
        return model.eval()


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`fn(images, labels)` over `x` in batches."""
    return torch.cat([fn(x[i : i + INFER_BATCH].contiguous(memory_format=torch.channels_last), y[i : i + INFER_BATCH])
                      for i in range(0, len(x), INFER_BATCH)])


# ---------------------------------------------------------------- AVATAR (Dolatabadi et al., 2023)


@dataclass(frozen=True)
class DdpmScale:
    """The benchmark's own DDPM at one preset: UNet widths, and how long it trains on held-out data."""

    channels: tuple[int, ...]
    layers_per_block: int
    train_steps: int
    batch_size: int


DDPM_SCALES = {
    "smoke": DdpmScale(channels=(16, 32, 32), layers_per_block=1, train_steps=100, batch_size=32),
    "quick": DdpmScale(channels=(16, 32, 64), layers_per_block=1, train_steps=600, batch_size=64),
}
# Denoising steps from t* to 0 (DDIM-style strides); None: every timestep, the DDPM ancestral chain.
SAMPLE_STEPS = {"smoke": 2, "quick": 5, "paper": None}
DDPM_SEED = 0  # fixed, so one DDPM per (held-out data, preset, settings) serves every cell seed
DDPM_LR = 1e-3


def _checkpoint_dir(path: str) -> Path:
    """The folder holding the UNet's config.json: PATH itself or PATH/unet (a full pipeline)."""
    root = Path(path).expanduser()
    return root / "unet" if (root / "unet" / "config.json").is_file() else root


@register_countermeasure("diffusion")
@dataclass
class DiffusionPurification(Countermeasure):
    """AVATAR (Dolatabadi et al.): diffuse each image to step t* of a DDPM, then denoise back to 0.

    The DDPM is a user's diffusers UNet2DModel folder (`checkpoint=PATH`, safetensors, loaded
    offline), or else one the benchmark trains on the held-out clean images (never the protected
    set) and caches. `steps` denoising steps from t* (0: the preset's: smoke 2, quick 5, paper t*,
    i.e. the full chain); `eta` 1 adds the DDPM posterior noise at each step, 0 is deterministic DDIM.
    """

    cost = 3.0
    prepare_cost = 30.0  # the DDPM fit, once per run (cached after)
    # 2: purification in `eval_batch` chunks (128 images on a CPU, not 250) with the UNet channels_last (speed;
    # the noise draws fall on other images)
    version = "2"

    t_star: int = 100
    steps: int = 0
    eta: float = 1.0
    checkpoint: str = field(default="", metadata=CONTENT)  # its content, not its path, is part of every key
    family = "purification"
    cache_preprocess = True

    def __post_init__(self) -> None:
        if not 1 <= self.t_star < 1000:
            raise ValueError(f"diffusion t_star must be in 1..999 (of 1000 DDPM steps), got {self.t_star}")
        if not 0 <= self.steps <= self.t_star:
            raise ValueError(f"diffusion steps must be in 0..t_star={self.t_star} (0: the preset's), got {self.steps}")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"diffusion eta must be in [0, 1], got {self.eta}")
        if self.checkpoint and not (_checkpoint_dir(self.checkpoint) / "config.json").is_file():
            raise ValueError(
                f"diffusion checkpoint {self.checkpoint!r} is not a diffusers UNet2DModel folder (no config.json "
                "there or in its unet/ subfolder); give a local folder with config.json and "
                "diffusion_pytorch_model.safetensors"
            )

    def settings(self, preset: Preset) -> dict[str, Any]:
        ddpm = None if self.checkpoint or preset.name not in DDPM_SCALES else dataclasses.asdict(DDPM_SCALES[preset.name])
        return {"steps": self.steps or _for_preset(SAMPLE_STEPS, preset, "diffusion") or self.t_star, "ddpm": ddpm}

    def prepare(self, ctx: Context) -> None:
        if not self.checkpoint:
            self.train_or_load_ddpm(ctx)

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        unet, alphas_cumprod = self.load_ddpm(ctx) if self.checkpoint else self.train_or_load_ddpm(ctx)
        if self.t_star > len(alphas_cumprod):
            raise ValueError(f"diffusion t_star={self.t_star} exceeds the DDPM's {len(alphas_cumprod)} steps")
        steps = self.settings(ctx.preset)["steps"]
        unet = unet.to(ctx.device, memory_format=torch.channels_last).eval().requires_grad_(False)
        alphas_cumprod = alphas_cumprod.to(ctx.device)
        gen = ctx.generator("diffusion/noise", ctx.device)
        out = torch.empty_like(images)
        batch = eval_batch(ctx.device)
        for i in ctx.progress(range(0, len(images), batch), desc=f"diffusion t*={self.t_star}", unit="batch", leave=False):
            x = (_to_float(images[i : i + batch], ctx.device) * 2 - 1).contiguous(memory_format=torch.channels_last)
            out[i : i + batch] = _to_uint8((purify_batch(unet, alphas_cumprod, x, self.t_star, steps, self.eta, gen) + 1) / 2)
        return out

    def load_ddpm(self, ctx: Context) -> tuple[nn.Module, torch.Tensor]:
        """The user's UNet (safetensors only, no network) and its noise schedule."""
        from diffusers import (  # imported on use: diffusers takes seconds to import
            DDPMScheduler,
            UNet2DModel,
        )

        root = Path(self.checkpoint).expanduser()
        unet = UNet2DModel.from_pretrained(_checkpoint_dir(self.checkpoint), local_files_only=True, use_safetensors=True)
        scheduler_dir = next((d for d in (root, root / "scheduler") if (d / "scheduler_config.json").is_file()), None)
        scheduler = DDPMScheduler.from_pretrained(scheduler_dir, local_files_only=True) if scheduler_dir else DDPMScheduler()
        if scheduler.config.prediction_type != "epsilon":
            raise ValueError(f"diffusion needs a noise-predicting (epsilon) DDPM, {self.checkpoint!r} predicts "
                             f"{scheduler.config.prediction_type!r}")
        return unet, scheduler.alphas_cumprod.float()

    def train_or_load_ddpm(self, ctx: Context) -> tuple[nn.Module, torch.Tensor]:
        """The benchmark's DDPM for this preset: from the cache (SHA-256 checked), else trained on held-out data."""
        from diffusers import DDPMScheduler

        heldout, _ = ctx.heldout()
        if len(heldout) == 0:
            raise ValueError(
                f"diffusion needs clean images disjoint from the training set to train its DDPM, and the "
                f"{ctx.preset.name!r} preset trains on the whole training split; give a pretrained diffusers "
                "UNet2DModel folder with --countermeasure-args diffusion.checkpoint=PATH"
            )
        scale = _for_preset(DDPM_SCALES, ctx.preset, "diffusion's DDPM")
        spec = {"heldout": tensor_digest(heldout), "scale": dataclasses.asdict(scale), "t_max": self.t_star,
                "seed": DDPM_SEED, "lr": DDPM_LR}
        state, _, _ = ctx.artifact(self, "ddpm", spec, lambda: train_ddpm(heldout, scale, self.t_star, ctx))
        unet = _tiny_unet(scale, heldout.shape[-1])
        unet.load_state_dict(state)
        return unet, DDPMScheduler().alphas_cumprod.float()


def _tiny_unet(scale: DdpmScale, image_size: int) -> nn.Module:
    """A diffusers UNet2DModel without attention blocks, to stay cheap on a CPU."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=image_size, in_channels=3, out_channels=3, block_out_channels=scale.channels,
        layers_per_block=scale.layers_per_block, norm_num_groups=8,
        down_block_types=("DownBlock2D",) * len(scale.channels), up_block_types=("UpBlock2D",) * len(scale.channels),
    )


def train_ddpm(heldout: torch.Tensor, scale: DdpmScale, t_max: int, ctx: Context) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train a small UNet to predict the noise at timesteps below `t_max`, the only ones purification
    visits, on random flipped batches of clean held-out images; returns its state dict and a record."""
    from diffusers import DDPMScheduler

    with global_rng(DDPM_SEED, ctx.device):
        unet = _tiny_unet(scale, heldout.shape[-1]).to(ctx.device)
    alphas_cumprod = DDPMScheduler().alphas_cumprod.float().to(ctx.device)
    gen = torch.Generator(ctx.device).manual_seed(DDPM_SEED)
    opt = torch.optim.Adam(unet.parameters(), lr=DDPM_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, scale.train_steps)
    bar = ctx.progress(range(scale.train_steps), desc="ddpm train", unit="step", leave=False)
    for _ in bar:
        idx = torch.randint(0, len(heldout), (scale.batch_size,), generator=gen, device=ctx.device).cpu()
        x = _to_float(heldout[idx], ctx.device) * 2 - 1
        flip = torch.rand(len(x), 1, 1, 1, generator=gen, device=ctx.device) < 0.5
        x = torch.where(flip, x.flip(-1), x)
        t = torch.randint(0, t_max, (len(x),), generator=gen, device=ctx.device)
        noise = torch.randn(x.shape, generator=gen, device=ctx.device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(unet(a.sqrt() * x + (1 - a).sqrt() * noise, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.4f}")
    state = {k: v.detach().cpu() for k, v in unet.state_dict().items()}
    return state, {"final_loss": loss.item(), "train_images": len(heldout)}


@torch.no_grad()
def purify_batch(
    unet: nn.Module, alphas_cumprod: torch.Tensor, x: torch.Tensor, t_star: int, steps: int, eta: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """Diffuse `x` (in [-1,1]) to timestep t* and denoise it in `steps` strides (DDIM update with
    noise scale `eta`; steps = t* with eta = 1 is the DDPM ancestral sampler). Timesteps count from 1
    as in the DDPM paper: t* = 100 uses ᾱ of the 100th noising step (index 99)."""
    times = [t_star * (steps - i) // steps - 1 for i in range(steps)]
    a = alphas_cumprod[times[0]]
    x = a.sqrt() * x + (1 - a).sqrt() * torch.randn(x.shape, generator=gen, device=x.device)
    for i, t in enumerate(times):
        a_t = alphas_cumprod[t]
        a_prev = alphas_cumprod[times[i + 1]] if i + 1 < len(times) else torch.ones_like(a_t)
        eps = unet(x, torch.full((len(x),), t, device=x.device)).sample
        x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if i + 1 < len(times):
            x = x + sigma * torch.randn(x.shape, generator=gen, device=x.device)
    return x
