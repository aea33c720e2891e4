"""The measurements `check-gpu` makes, each on its own: the victim's throughput under each precision, layout and
graph variant, the own-step countermeasures' speed as a cell runs them, fused victims, FLOPs per image, the bf16
matrix rate, CUDA-graph parity on real images and several cells at once."""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..data import DatasetNotFoundError, ImageSet, load_dataset
from ..engine.cost import synchronize
from ..models import create_model
from ..plugins import Context, Countermeasure
from ..presets import Preset, get_preset
from ..registry import countermeasures
from ..training import train_victim
from .fused import FusedJob, train_victims_fused

WARM_UP_IMAGES = 2048  # one epoch on these before each timed run: cuDNN autotuning, allocator growth
WARM_UP_TEST = 256
ADV_IMAGES = 10_000  # the adversarial-training cost factor is timed on one epoch over at most these
ADV_TEST = 256  # test images of that epoch's evaluation (kept small: it is timed with the epoch)
PARITY_TRAIN, PARITY_TEST = 10_000, 2_000


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


def _one_epoch(preset: Preset) -> Preset:
    return dataclasses.replace(preset, epochs=1, eval_every=1)


def _warm_up(train: ImageSet, test: ImageSet, preset: Preset, cm: Countermeasure, device: torch.device,
             victim: str | None, **options: Any) -> None:
    train_victim(train.images[:WARM_UP_IMAGES], train.labels[:WARM_UP_IMAGES], test.images[:WARM_UP_TEST],
                 test.labels[:WARM_UP_TEST], len(train.classes), _one_epoch(preset), cm, 0, device, victim=victim, **options)


def variant_row(train: ImageSet, test: ImageSet, preset: Preset, device: torch.device, amp: bool,
                channels_last: bool, cuda_graph: bool, victim: str | None = None, real: bool = False) -> dict[str, Any]:
    """Images per second, wall time, peak memory (CUDA) and test accuracy (`real` images only) of the victim
    trained under `none` with these precision, layout and graph options, after a one-epoch warm-up."""
    cuda = device.type == "cuda"
    none = countermeasures.get("none")()
    options = {"amp": amp, "channels_last": channels_last, "cuda_graph": cuda_graph}
    _warm_up(train, test, preset, none, device, victim, **options)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = train_victim(train.images, train.labels, test.images, test.labels, len(train.classes), preset, none, 0, device,
                          victim=victim, **options)
    synchronize(device)
    return {
        "images_per_second": result.images_per_second, "wall_s": time.perf_counter() - start,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "test_acc": result.final_acc if real else None, "cuda_graph": result.cuda_graph,
    }


def adv_train_cost_factor(train: ImageSet, test: ImageSet, preset: Preset, device: torch.device,
                          victim: str | None = None, images: int = ADV_IMAGES) -> float:
    """Time per image of the engine's `adv_train` over that of `none` without CUDA graph (the eager step adversarial
    training keeps), each `train_victim` for one epoch of the preset's recipe on the same first `images` images."""
    rates = {name: own_step_speed(name, train, test, preset, device, victim, False, images)["images_per_second"]
             for name in ("none", "adv_train")}
    return rates["none"] / rates["adv_train"]


@contextmanager
def _set_up(name: str, device: torch.device, preset: Preset, num_classes: int) -> Iterator[Countermeasure]:
    """Countermeasure `name` with its `setup` run (seed 0, a throw-away cache folder): a throughput check times
    the own-step countermeasures, whose setup needs no data, surrogate or held-out split."""
    with tempfile.TemporaryDirectory() as cache:
        cm = countermeasures.get(name)()
        cm.setup(Context(device, 0, preset, num_classes, Path(cache)))
        yield cm


def own_step_countermeasures() -> list[str]:
    """The registered countermeasures that replace the training step (they cannot share the standard one)."""
    return [n for n in countermeasures.names() if "training_step" in countermeasures.get(n).stages()]


def own_step_speed(name: str, train: ImageSet, test: ImageSet, preset: Preset, device: torch.device,
                   victim: str | None, cuda_graph: bool, images: int = ADV_IMAGES) -> dict[str, Any]:
    """Images per second of countermeasure `name` as a cell trains it (`train_victim`, set up as `run_cell` sets
    it up), one epoch of the preset's recipe on the first `images` images after a warm-up."""
    preset = _one_epoch(preset)
    x, y = train.images[:images], train.labels[:images]
    with _set_up(name, device, preset, len(train.classes)) as cm:
        _warm_up(ImageSet(x, y, train.classes), test, preset, cm, device, victim, cuda_graph=cuda_graph)
        result = train_victim(x, y, test.images[:ADV_TEST], test.labels[:ADV_TEST], len(train.classes), preset, cm, 0,
                              device, victim=victim, cuda_graph=cuda_graph)
    return {"images_per_second": result.images_per_second, "cuda_graph": result.cuda_graph}


def fused_row(train: ImageSet, test: ImageSet, preset: Preset, device: torch.device, victims: int,
              victim: str | None, cuda_graph: bool) -> dict[str, Any]:
    """Images per second summed over `victims` fused `none` victims (seeds 0..K-1, `train_victims_fused`), wall
    time and peak memory, after a one-epoch warm-up of the same K."""
    cuda = device.type == "cuda"
    none = countermeasures.get("none")

    def jobs(n: int) -> list[FusedJob]:
        return [FusedJob(train.images[:n], train.labels[:n], none(), seed, victim) for seed in range(victims)]

    train_victims_fused(jobs(WARM_UP_IMAGES), _one_epoch(preset), device, test.images[:WARM_UP_TEST],
                        test.labels[:WARM_UP_TEST], len(train.classes), cuda_graph=cuda_graph)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    results = train_victims_fused(jobs(len(train.images)), preset, device, test.images, test.labels, len(train.classes),
                                  cuda_graph=cuda_graph)
    synchronize(device)
    return {
        "victims": victims, "images_per_second": sum(r.images_per_second for r in results),
        "wall_s": time.perf_counter() - start,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "cuda_graph": results[0].cuda_graph,
    }


def training_flops_per_image(victim: str, device: torch.device, batch: int = 128) -> float:
    """Floating-point operations of one training image: forward and backward of the victim at `batch`, counted by
    PyTorch's FLOP counter (matrix products and convolutions; the elementwise rest is not counted)."""
    model = create_model(victim, 10).to(device).train()
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


def bf16_matmul_tflops(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    """The card's bf16 matrix-product rate measured here: `repeats` n×n×n products after three warm-ups."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def write_parity_npz(npz: str, data_root: str | None) -> None:
    """The parity check's real images (first 10,000 training, 2,000 test of CIFAR-10) as an .npz, unless it exists."""
    if Path(npz).exists():
        return
    train, test, data = cifar_or_random(data_root, PARITY_TRAIN, PARITY_TEST)
    if data != "CIFAR-10":
        raise FileNotFoundError(f"--parity-npz {npz} does not exist and the data root holds no CIFAR-10 to write it "
                                "from (pass --data-root, or send the file along)")
    np.savez(npz, train_x=train.images.numpy(), train_y=train.labels.numpy(),
             test_x=test.images.numpy(), test_y=test.labels.numpy())


def graph_parity(npz: str, device: torch.device, epochs: int, victim: str | None = None) -> dict[str, Any]:
    """Test accuracy and speed of the paper preset trained with and without CUDA graphs on the real images of `npz`."""
    with np.load(npz, allow_pickle=False) as f:
        train_x, train_y, test_x, test_y = (torch.from_numpy(f[k]) for k in ("train_x", "train_y", "test_x", "test_y"))
    preset = dataclasses.replace(get_preset("paper"), epochs=epochs, eval_every=epochs)
    rows = {}
    for graph in (True, False):
        result = train_victim(train_x, train_y, test_x, test_y, 10, preset, countermeasures.get("none")(), 0, device,
                              cuda_graph=graph, victim=victim)
        rows["CUDA graph" if graph else "no graph"] = {"test_acc": result.final_acc, "train_acc": result.train_acc,
                                                       "images_per_second": result.images_per_second}
    return {"epochs": epochs, "train_images": len(train_x), "test_images": len(test_x), **rows}


def _concurrent_cell(device_name: str, data_root: str | None, train_size: int, test_size: int, epochs: int,
                     victim: str | None, countermeasure: str, barrier: Any, results: Any) -> None:
    """One of several paper-preset cells sharing the GPU: warm up, wait for the others, train, report."""
    device = torch.device(device_name)
    train, test, _ = cifar_or_random(data_root, train_size, test_size)
    preset = dataclasses.replace(get_preset("paper"), epochs=epochs, eval_every=epochs)
    with _set_up(countermeasure, device, preset, len(train.classes)) as cm:
        _warm_up(train, test, preset, cm, device, victim)
        barrier.wait()
        start = time.time()
        result = train_victim(train.images, train.labels, test.images, test.labels, len(train.classes), preset, cm, 0,
                              device,
                              victim=victim)
        synchronize(device)
    results.put((start, time.time(), epochs * len(train.images), result.cuda_graph))


def concurrent_throughput(device: torch.device, jobs: int, data_root: str | None, train_size: int, test_size: int,
                          epochs: int, victim: str | None = None, countermeasure: str = "none") -> dict[str, Any]:
    """Images per second summed over `jobs` cells of `countermeasure` trained at once on one GPU, first start to
    last finish."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(jobs), ctx.Queue()
    procs = [ctx.Process(target=_concurrent_cell, args=(str(device), data_root, train_size, test_size, epochs, victim,
                                                         countermeasure, barrier, results))
             for _ in range(jobs)]
    for proc in procs:
        proc.start()
    rows = [results.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(r[1] for r in rows) - min(r[0] for r in rows)
    return {"images_per_second": sum(r[2] for r in rows) / wall, "wall_s": wall, "cuda_graph": all(r[3] for r in rows)}
