"""CUDA path check of Semantic Deep Hiding: `dh` and `dh-8` end to end on the GPU (smoke settings,
random-weight surrogate, synthetic images), then the paper-size hiding network's training-step
time and its generation throughput over 50,000 32×32 images.

    python scripts/dh_gpu_check.py [--steps 200] [--images 50000] [--out results.json]

Needs no dataset: the images are random uint8 (timings do not depend on the pixels; the protected
set's accuracy is not measured here).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmark.models import create_model
from benchmark.plugins import Context
from benchmark.presets import get_preset
from benchmark.registry import methods
from methods.dh.method import assign_secrets
from methods.dh.semantic import procedural_images
from methods.dh.training import TrainingSettings, hide_all, train_hiding_network


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="paper-size training steps to time")
    parser.add_argument("--images", type=int, default=50_000, help="images to time generation on")
    parser.add_argument("--device", default="cuda", help="cpu only for a dry run of this script")
    parser.add_argument("--out", default=None, help="write the measurements as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this script checks the GPU path", file=sys.stderr)
        return 2
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(100)
    images = torch.randint(0, 256, (1000, 3, 32, 32), dtype=torch.uint8, generator=gen)
    surrogate = create_model("tinycnn", 10).to(device).eval().requires_grad_(False)
    report: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as cache:
        for name in ("dh", "dh-8"):
            ctx = Context(device, 0, get_preset("smoke"), 10, Path(cache), surrogate_fn=lambda arch: surrogate)
            method = methods.get(name)()
            start = time.perf_counter()
            out = method(images, labels, ctx)
            assert out.dtype == torch.uint8 and out.shape == images.shape and out.device.type == "cpu"
            linf = (out.int() - images.int()).abs().max().item()
            report[name] = {"seconds": time.perf_counter() - start, "linf_255": linf,
                            "revealed_psnr": ctx.notes["revealed_psnr"], "feature_spread": ctx.notes["feature_spread"]}
            print(name, report[name], flush=True)
    paper = methods.get("dh")().settings(get_preset("paper"))
    s = TrainingSettings(paper["blocks"], paper["width"], paper["dense_layers"], args.steps, paper["lr"],
                         paper["per_class"], paper["classes_per_batch"], paper["lfc_weight"], paper["reveal_noise"], 0.0)
    secrets, secret_labels = procedural_images(10, 10, 32, 0)
    resnet = create_model("resnet18", 10).to(device).eval().requires_grad_(False)
    assignment = assign_secrets(labels, secret_labels, "class", gen)
    sync()
    start = time.perf_counter()
    net, history = train_hiding_network(images, labels, secrets, assignment, resnet, s, 0, device, lambda it, **kw: it)
    sync()
    step_s = (time.perf_counter() - start) / args.steps
    full = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=gen)
    assign_full = assign_secrets(torch.arange(args.images) % 10, secret_labels, "class", gen)
    sync()
    start = time.perf_counter()
    hide_all(net, full, secrets, assign_full, 0.0, device, lambda it, **kw: it)
    sync()
    gen_s = time.perf_counter() - start
    report["paper_network"] = {
        "step_ms": 1000 * step_s, "projected_training_min": step_s * paper["steps"] / 60,
        "generation_images": args.images, "generation_s": gen_s, "final_losses": {k: v[-1] for k, v in history.items()},
    }
    print("paper-size network", report["paper_network"], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
