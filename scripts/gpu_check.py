"""CUDA path check: paper-preset ResNet-18 throughput with bf16 autocast and channels_last against
fp32 NCHW, peak memory, and the projected wall time of a full paper-preset grid.

    python scripts/gpu_check.py [--epochs 3] [--data-root PATH] [--out results.json]

Uses real CIFAR-10 when the data root holds it, else random uint8 images of the same shape
(throughput does not depend on the pixels; accuracy is then meaningless and not reported).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

from benchmark.data import DatasetNotFoundError, ImageSet, load_dataset
from benchmark.presets import get_preset
from benchmark.registry import countermeasures, methods
from benchmark.training import train_victim

ADV_TRAIN_COST = 11  # PGD-10 adversarial training: 10 attack steps + 1 update per batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None, help="write the measurements as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this script checks the GPU path only", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    try:
        train, test = load_dataset("cifar10", True, args.data_root, download=False), load_dataset("cifar10", False, args.data_root, download=False)
        data = "CIFAR-10"
    except DatasetNotFoundError:
        gen = torch.Generator().manual_seed(0)
        train_x = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=gen)
        test_x = torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8, generator=gen)
        classes = [str(c) for c in range(10)]
        train = ImageSet(train_x, torch.randint(0, 10, (50_000,), generator=gen), classes)
        test = ImageSet(test_x, torch.randint(0, 10, (10_000,), generator=gen), classes)
        data = "random uint8 (CIFAR-10 shape)"
    paper = get_preset("paper")
    preset = dataclasses.replace(paper, epochs=args.epochs, eval_every=args.epochs)
    none = countermeasures.get("none")()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "data": data, "epochs": args.epochs}
    print(f"{report['device']}  torch {torch.__version__}  data: {data}", flush=True)
    for label, amp, layout in [("bf16 autocast + channels_last", True, True), ("fp32 NCHW", False, False)]:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = train_victim(train.images, train.labels, test.images, test.labels, 10, preset, none, 0, device,
                              amp=amp, channels_last=layout)
        torch.cuda.synchronize()
        row = {
            "images_per_second": result.images_per_second,
            "wall_s": time.perf_counter() - start,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "test_acc": result.final_acc if data == "CIFAR-10" else None,
        }
        report[label] = row
        print(f"{label:32s} {row['images_per_second']:>9,.0f} img/s  peak {row['peak_memory_gib']:.2f} GiB  "
              f"({args.epochs} epochs incl. warm-up, {row['wall_s']:.0f} s)", flush=True)
    ips = report["bf16 autocast + channels_last"]["images_per_second"]
    cell_s = paper.epochs * len(train.images) / ips
    n_methods, n_defenses = len(methods.names()), len(countermeasures.names())
    standard = n_methods * (n_defenses - 1)
    grid_s = (standard + ADV_TRAIN_COST * n_methods) * cell_s if "adv_train" in countermeasures.names() else n_methods * n_defenses * cell_s
    report["projection"] = {
        "cell_minutes": cell_s / 60, "methods": n_methods, "countermeasures": n_defenses,
        "grid_gpu_hours_one_seed": grid_s / 3600,
    }
    print(f"paper cell ({paper.epochs} epochs of {len(train.images):,} images): {cell_s / 60:.1f} min; "
          f"grid of {n_methods} methods × {n_defenses} countermeasures, one seed "
          f"(adv_train at {ADV_TRAIN_COST}×, generation not included): {grid_s / 3600:.1f} GPU-hours", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
