"""DH's `diffusers` semantic source, plumbing only: tiny randomly initialized Stable Diffusion + ControlNet
folders written here, loaded by path, sampled with the class edge maps as control images."""
from __future__ import annotations

import json

import pytest
import torch

from methods.dh.diffusion_sig import DiffusionSettings
from methods.dh.semantic import class_edge_maps, semantic_images

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> tuple[str, str]:
    """Folders of a 2-level Stable Diffusion pipeline and ControlNet, random weights, a 12-token tokenizer."""
    root = tmp_path_factory.mktemp("weights")
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    channels = (8, 16)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=channels,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8, norm_num_groups=4, attention_head_dim=2,
    )
    controlnet = ControlNetModel(
        in_channels=4, layers_per_block=1, block_out_channels=channels,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), cross_attention_dim=8, norm_num_groups=4,
        attention_head_dim=2, conditioning_embedding_out_channels=(4, 8),
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=channels, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=20, hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    vocab = root / "vocab.json"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>"] + list("abcdefghij"))}))
    merges = root / "merges.txt"
    merges.write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    pipe = StableDiffusionControlNetPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, controlnet=controlnet,
        scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    sd, cn = root / "sd", root / "controlnet"
    pipe.save_pretrained(sd)
    controlnet.save_pretrained(cn)
    return str(sd), str(cn)


def test_diffusers_source_samples_per_class_images_from_local_folders(tiny_weights):
    sd, cn = tiny_weights
    settings = DiffusionSettings(sd, cn, "a b c", steps=2, resolution=32)
    images, labels = semantic_images("diffusers", 3, 2, 16, seed=5, diffusion=settings)
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert images.float().std() > 0  # sampled, not a blank
    assert not torch.equal(images[0], images[1])  # another seed per image of a class
    again, _ = semantic_images("diffusers", 3, 2, 16, seed=5, diffusion=settings)
    assert torch.equal(images, again)


def test_edge_maps_are_binary_outlines_that_differ_by_class():
    edges = class_edge_maps(4, 64, seed=3)
    assert edges.shape == (4, 64, 64) and set(edges.unique().tolist()) == {0.0, 1.0}
    assert (edges.flatten(1).mean(1) < 0.5).all()  # outlines, not filled shapes
    overlap = (edges[:, None] * edges[None]).flatten(2).sum(2) / edges.flatten(1).sum(1)
    assert (overlap - torch.eye(4)).abs().max() < 0.9  # no two classes share their outline


def test_missing_weights_and_bad_settings_are_named(tmp_path):
    settings = DiffusionSettings(str(tmp_path / "nope"), str(tmp_path), "x", steps=1, resolution=32)
    with pytest.raises(FileNotFoundError, match="sd_path="):
        semantic_images("diffusers", 2, 1, 16, seed=0, diffusion=settings)
    from benchmark.registry import methods

    with pytest.raises(ValueError, match="sd_path=PATH and controlnet_path=PATH"):
        methods.get("dh")(semantic_source="diffusers")


def test_dh_hides_diffusers_semantic_images(tmp_path, cifar_small, tiny_weights):
    from benchmark.models import create_model
    from benchmark.plugins import Context
    from benchmark.presets import PRESETS
    from benchmark.registry import methods

    sd, cn = tiny_weights
    ctx = Context(torch.device("cpu"), seed=0, preset=PRESETS["smoke"], num_classes=10, cache_dir=tmp_path / "cache",
                  surrogate_fn=lambda arch: create_model(arch, 10).eval().requires_grad_(False))
    dh = methods.get("dh")(semantic_source="diffusers", sd_path=sd, controlnet_path=cn, sd_steps=1, sd_resolution=32,
                           semantic_per_class=1, steps=2)
    protected = dh.generate(cifar_small.images, cifar_small.labels, ctx)
    assert protected.shape == cifar_small.images.shape and protected.dtype == torch.uint8
    assert ctx.notes["semantic_images"] == 10
    assert "sd_path" in dh.params() and "sd_path" not in methods.get("dh")().params()
