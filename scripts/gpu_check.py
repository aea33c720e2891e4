"""CUDA path check: paper-preset ResNet-18 training throughput of the engine's default (bf16 autocast,
channels_last, CUDA graphs) against the same without graphs, bf16 NCHW and fp32 NCHW; peak memory; the
aggregate throughput of several cells sharing the GPU (`run --jobs N`); the cost factor of PGD-10
adversarial training; a quick cell's time; and the projected wall time of a full paper-preset grid.

    python scripts/gpu_check.py [--epochs 3] [--jobs 2,4] [--data-root PATH] [--parity-npz F.npz]
                                [--methods 8 --countermeasures 19] [--out F.json]

`--parity-npz` trains the paper preset with and without CUDA graphs on the same real CIFAR-10 images
(10,000 training, 2,000 test) and reports both test accuracies; the file is written from `--data-root`
when missing, so a machine without the dataset can be sent just this file.

Uses real CIFAR-10 when the data root holds it, else random uint8 images of the same shape
(throughput does not depend on the pixels; accuracy is then meaningless and not reported).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data import DatasetNotFoundError, ImageSet, load_dataset
from benchmark.models import create_model
from benchmark.presets import get_preset
from benchmark.registry import countermeasures, methods
from benchmark.training import train_victim

# (label, bf16 autocast, channels_last, CUDA graph); the first is what the engine does on CUDA.
VARIANTS = [
    ("bf16 + channels_last + CUDA graph", True, True, True),
    ("bf16 + channels_last", True, True, False),
    ("bf16 NCHW + CUDA graph", True, False, True),
    ("fp32 NCHW", False, False, False),
]


def cifar_or_random(data_root: str | None, train_size: int, test_size: int) -> tuple[ImageSet, ImageSet, str]:
    """Real CIFAR-10 if present, else random images and labels of the same shape."""
    try:
        train = load_dataset("cifar10", True, data_root, download=False)
        test = load_dataset("cifar10", False, data_root, download=False)
        return (ImageSet(train.images[:train_size], train.labels[:train_size], train.classes),
                ImageSet(test.images[:test_size], test.labels[:test_size], test.classes), "CIFAR-10")
    except DatasetNotFoundError:
        gen = torch.Generator().manual_seed(0)
        classes = [str(c) for c in range(10)]

        def random_set(n: int) -> ImageSet:
            return ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                            torch.randint(0, 10, (n,), generator=gen), classes)

        return random_set(train_size), random_set(test_size), "random uint8 (CIFAR-10 shape)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def adversarial_cost_factor(device: torch.device, batches: int, batch_size: int = 128, warm_up: int = 5) -> float:
    """Time of a PGD-10 (torchattacks) adversarial-training step over a standard step, ResNet-18."""
    import torchattacks

    model = create_model("resnet18", 10).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    pgd = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)

    def timed(adversarial: bool) -> float:
        for i in range(batches + warm_up):
            if i == warm_up:
                sync(device)
                start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                inputs = pgd(x, y) if adversarial else x
                model.train()
                loss = F.cross_entropy(model(inputs), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        return (time.perf_counter() - start) / batches

    return timed(True) / timed(False)


def graph_parity(npz: str, data_root: str | None, device: torch.device, epochs: int) -> dict:
    """Test accuracy and speed of the paper preset trained with and without CUDA graphs on the same real images."""
    if not Path(npz).exists():
        train, test, data = cifar_or_random(data_root, 10_000, 2_000)
        if data != "CIFAR-10":
            raise SystemExit(f"--parity-npz {npz} does not exist and --data-root holds no CIFAR-10 to write it from")
        np.savez(npz, train_x=train.images.numpy(), train_y=train.labels.numpy(),
                 test_x=test.images.numpy(), test_y=test.labels.numpy())
    with np.load(npz, allow_pickle=False) as f:
        train_x, train_y, test_x, test_y = (torch.from_numpy(f[k]) for k in ("train_x", "train_y", "test_x", "test_y"))
    preset = dataclasses.replace(get_preset("paper"), epochs=epochs, eval_every=epochs)
    rows = {}
    for graph in (True, False):
        result = train_victim(train_x, train_y, test_x, test_y, 10, preset, countermeasures.get("none")(), 0, device,
                              cuda_graph=graph)
        rows["CUDA graph" if graph else "no graph"] = {"test_acc": result.final_acc, "train_acc": result.train_acc,
                                                       "images_per_second": result.images_per_second}
    return {"epochs": epochs, "train_images": len(train_x), "test_images": len(test_x), **rows}


def _concurrent_cell(device_name: str, data_root: str | None, train_size: int, test_size: int, epochs: int,
                     barrier: Any, results: Any) -> None:
    """One of several paper-preset cells sharing the GPU: warm up, wait for the others, train, report."""
    device = torch.device(device_name)
    train, test, _ = cifar_or_random(data_root, train_size, test_size)
    preset = dataclasses.replace(get_preset("paper"), epochs=epochs, eval_every=epochs)
    none = countermeasures.get("none")()
    warm_up = dataclasses.replace(preset, epochs=1, eval_every=1)
    train_victim(train.images[:2048], train.labels[:2048], test.images[:256], test.labels[:256], 10, warm_up, none, 0, device)
    barrier.wait()
    start = time.time()
    result = train_victim(train.images, train.labels, test.images, test.labels, 10, preset, none, 0, device)
    sync(device)
    results.put((start, time.time(), epochs * len(train.images), result.cuda_graph))


def concurrent_throughput(device: str, jobs: int, data_root: str | None, train_size: int, test_size: int, epochs: int) -> dict:
    """Images per second summed over `jobs` cells trained at once on one GPU, first start to last finish."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(jobs), ctx.Queue()
    procs = [ctx.Process(target=_concurrent_cell, args=(device, data_root, train_size, test_size, epochs, barrier, results))
             for _ in range(jobs)]
    for proc in procs:
        proc.start()
    rows = [results.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(r[1] for r in rows) - min(r[0] for r in rows)
    return {"images_per_second": sum(r[2] for r in rows) / wall, "wall_s": wall, "cuda_graph": all(r[3] for r in rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--methods", type=int, default=0, help="grid rows for the projection (0: registered methods)")
    parser.add_argument("--countermeasures", type=int, default=0, help="grid columns incl. none (0: registered)")
    parser.add_argument("--jobs", default="2,4", help="comma list of concurrent cell counts to measure ('' for none)")
    parser.add_argument("--parity-npz", default=None, help="real-image accuracy check with and without CUDA graphs")
    parser.add_argument("--parity-epochs", type=int, default=15)
    parser.add_argument("--out", default=None, help="write the measurements as JSON here")
    parser.add_argument("--device", default="cuda", help="cuda (the point of this script), or cpu for a dry run")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: this script checks the GPU path (--device cpu for a dry run)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    train, test, data = cifar_or_random(args.data_root, args.train_size, args.test_size)
    paper = get_preset("paper")
    preset = dataclasses.replace(paper, epochs=args.epochs, eval_every=args.epochs)
    none = countermeasures.get("none")()
    report: dict = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__, "data": data, "epochs": args.epochs}
    print(f"{report['device']}  torch {torch.__version__}  data: {data}", flush=True)
    for label, amp, channels_last, graph in VARIANTS:
        options = {"amp": amp, "channels_last": channels_last, "cuda_graph": graph}
        warm_up = dataclasses.replace(preset, epochs=1, eval_every=1)  # cuDNN autotuning and allocator growth
        train_victim(train.images[:2048], train.labels[:2048], test.images[:256], test.labels[:256], 10, warm_up, none,
                     0, device, **options)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = train_victim(train.images, train.labels, test.images, test.labels, 10, preset, none, 0, device, **options)
        sync(device)
        row = {
            "images_per_second": result.images_per_second, "wall_s": time.perf_counter() - start,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan"),
            "test_acc": result.final_acc if data == "CIFAR-10" else None, "cuda_graph": result.cuda_graph,
        }
        report[label] = row
        print(f"{label:34s} {row['images_per_second']:>8,.0f} img/s  peak {row['peak_memory_gib']:.2f} GiB  "
              f"({args.epochs} epochs of {len(train.images):,} + one evaluation: {row['wall_s']:.1f} s)", flush=True)
    quick = get_preset("quick")
    start = time.perf_counter()
    train_victim(train.images[:5000], train.labels[:5000], test.images, test.labels, 10, quick, none, 0, device)
    sync(device)
    report["quick_cell_s"] = time.perf_counter() - start
    print(f"quick cell ({quick.model}, {quick.epochs} epochs of {min(5000, len(train.images)):,} images): {report['quick_cell_s']:.1f} s", flush=True)
    report["adv_train_cost_factor"] = adversarial_cost_factor(device, 30) if cuda else adversarial_cost_factor(device, 1, 8, 0)
    print(f"PGD-10 adversarial training step / standard step (ResNet-18, batch 128): {report['adv_train_cost_factor']:.1f}×", flush=True)
    if args.parity_npz:
        report["graph_parity"] = parity = graph_parity(args.parity_npz, args.data_root, device, args.parity_epochs)
        for label in ("CUDA graph", "no graph"):
            print(f"real CIFAR-10 ({parity['train_images']:,} train, {args.parity_epochs} epochs), {label:10s}: "
                  f"test {parity[label]['test_acc']:.3f}  train {parity[label]['train_acc']:.3f}  "
                  f"{parity[label]['images_per_second']:,.0f} img/s", flush=True)
    report["concurrent"] = {}
    for jobs in [int(j) for j in args.jobs.split(",") if j]:
        row = concurrent_throughput(args.device, jobs, args.data_root, args.train_size, args.test_size, args.epochs)
        report["concurrent"][str(jobs)] = row
        print(f"{jobs} cells at once (run --jobs {jobs}): {row['images_per_second']:>8,.0f} img/s in total "
              f"({row['wall_s']:.1f} s)", flush=True)
    single = report[VARIANTS[0][0]]["images_per_second"]
    best_jobs, best = max([("1", single)] + [(j, r["images_per_second"]) for j, r in report["concurrent"].items()],
                          key=lambda item: item[1])
    n_methods = args.methods or len(methods.names())
    n_cms = args.countermeasures or len(countermeasures.names())
    # Adversarial training keeps the eager step, so it runs at the no-graph speed times its cost factor.
    eager = report[VARIANTS[1][0]]["images_per_second"]
    cell_images = paper.epochs * 50_000
    grid_s = n_methods * ((n_cms - 1) * cell_images / best
                          + report["adv_train_cost_factor"] * cell_images / eager * single / best)
    report["projection"] = {"cell_minutes": cell_images / single / 60, "methods": n_methods, "countermeasures": n_cms,
                            "jobs": int(best_jobs), "grid_gpu_hours_one_seed": grid_s / 3600}
    print(f"paper cell ({paper.epochs} epochs × 50,000 images): {cell_images / single / 60:.1f} min alone; grid of "
          f"{n_methods} methods × {n_cms} countermeasures with --jobs {best_jobs} (adversarial training at the factor "
          f"above; generation not included), one seed: {grid_s / 3600:.1f} GPU-hours", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
