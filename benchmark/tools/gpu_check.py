"""The `check-gpu` command: CUDA-path speed, memory and projected grid time; with `--dh`, Semantic Deep Hiding's."""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..engine.cost import synchronize
from ..models import create_model
from ..plugins import Context
from ..presets import Preset, get_preset
from ..progress import quiet
from ..registry import countermeasures, methods, models
from ..training import train_victim
from .gpu_measures import (
    ADV_IMAGES, ADV_TEST, adv_train_cost_factor, bf16_matmul_tflops, cifar_or_random, concurrent_throughput, fused_row,
    graph_parity, own_step_countermeasures, own_step_speed, training_flops_per_image, variant_row, write_parity_npz,
)

# (label, bf16 autocast, channels_last, CUDA graph); the first is what the engine does on CUDA.
VARIANTS = [
    ("bf16 + channels_last + CUDA graph", True, True, True),
    ("bf16 + channels_last", True, True, False),
    ("bf16 NCHW + CUDA graph", True, False, True),
    ("fp32 NCHW", False, False, False),
]
DH_IMAGES = 1000  # synthetic training images of the DH end-to-end runs (100 per class)
PAPER_CELL_IMAGES = 50_000  # CIFAR-10's training split: what one paper cell trains on per epoch


def resolve_device(name: str) -> torch.device:
    """The device to check: `cuda`, `cuda:N`, or `cpu` for a dry run; no GPU is an error unless `cpu`."""
    if name != "cpu" and name != "cuda" and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; valid devices: cuda, cuda:N, cpu (a dry run)")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"check-gpu measures the CUDA path, but torch {torch.__version__} sees no GPU "
                             "(torch.cuda.is_available() is False); pass --device cpu for a dry run")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def parse_jobs(text: str, flag: str = "--jobs") -> list[int]:
    """`2,4` → [2, 4]; '' → [] (no such measurement); `flag` names the option in errors."""
    try:
        jobs = [int(j) for j in text.split(",") if j.strip()]
    except ValueError:
        raise ValueError(f"{flag} expects counts separated by commas (or '' for none), got {text!r}") from None
    if any(j < 1 for j in jobs):
        raise ValueError(f"{flag} counts must be ≥ 1, got {text!r}")
    return jobs


def _say(text: str) -> None:
    print(text, flush=True)


def check_gpu(
    device: torch.device,
    epochs: int = 3,
    train_size: int = 50_000,
    test_size: int = 10_000,
    jobs: list[int] | None = None,
    data_root: str | None = None,
    parity_npz: str | None = None,
    parity_epochs: int = 15,
    n_methods: int = 0,
    n_countermeasures: int = 0,
    victim: str | None = None,
    fused: list[int] | None = None,
) -> dict[str, Any]:
    """The paper preset's training throughput in each of VARIANTS, a quick cell's time, the adversarial-training
    cost factor, each own-step countermeasure's speed as it runs, optionally graph parity on real images, several
    cells at once and `fused` victims in one process, each throughput as a fraction of the bf16 matrix-product
    rate measured here, and the projected wall time of the paper grid (`n_methods` × `n_countermeasures`, 0: the
    registered ones); prints each as it comes."""
    for name, value in (("--epochs", epochs), ("--train-size", train_size), ("--test-size", test_size),
                        ("--parity-epochs", parity_epochs)):
        if value < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value}")
    if victim is not None:
        models.get(victim)
    if parity_npz:  # before any measurement, not after minutes of it
        write_parity_npz(parity_npz, data_root)
    cuda = device.type == "cuda"
    train, test, data = cifar_or_random(data_root, train_size, test_size)
    paper = get_preset("paper")
    preset = dataclasses.replace(paper, epochs=epochs, eval_every=epochs)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if cuda else "cpu",
                              "torch": torch.__version__, "data": data, "epochs": epochs}
    _say(f"{report['device']}  torch {torch.__version__}  data: {data}"
         + (f"  victim: {victim}" if victim else ""))
    for label, amp, channels_last, graph in VARIANTS:
        row = report[label] = variant_row(train, test, preset, device, amp, channels_last, graph, victim,
                                          data == "CIFAR-10")
        peak = f"{row['peak_memory_gib']:.2f} GiB" if cuda else "-"
        _say(f"{label:34s} {row['images_per_second']:>8,.0f} img/s  peak {peak}  "
             f"({epochs} epochs of {len(train.images):,} + one evaluation: {row['wall_s']:.1f} s)")
    quick = get_preset("quick")
    none = countermeasures.get("none")()
    start = time.perf_counter()
    train_victim(train.images[:5000], train.labels[:5000], test.images, test.labels, len(train.classes), quick, none, 0, device)
    synchronize(device)
    report["quick_cell_s"] = time.perf_counter() - start
    _say(f"quick cell ({quick.model}, {quick.epochs} epochs of {min(5000, len(train.images)):,} images): "
         f"{report['quick_cell_s']:.1f} s")
    report["adv_train_cost_factor"] = adv_train_cost_factor(train, test, preset, device, victim)
    _say(f"adv_train (PGD-10, its own eager step) / none without graph, {victim or paper.model}, batch "
         f"{min(paper.batch_size, len(train.images))}, one epoch of {min(ADV_IMAGES, len(train.images)):,}: "
         f"{report['adv_train_cost_factor']:.1f}×")
    if parity_npz:
        report["graph_parity"] = parity = graph_parity(parity_npz, device, parity_epochs, victim)
        for label in ("CUDA graph", "no graph"):
            _say(f"real CIFAR-10 ({parity['train_images']:,} train, {parity_epochs} epochs), {label:10s}: "
                 f"test {parity[label]['test_acc']:.3f}  train {parity[label]['train_acc']:.3f}  "
                 f"{parity[label]['images_per_second']:,.0f} img/s")
    report["own_step"] = {}
    for name in own_step_countermeasures():
        graphs = (True, False) if cuda and countermeasures.get(name).graph_step else (True,)  # same on a CPU
        for graph in graphs:
            label = name if graph else f"{name}, no graph"
            row = report["own_step"][label] = own_step_speed(name, train, test, preset, device, victim, graph)
            _say(f"{label:24s} {row['images_per_second']:>8,.0f} img/s as a cell trains it"
                 f"{' (CUDA graph)' if row['cuda_graph'] else ''}")
    report["fused"] = {}
    for k in fused or []:
        for graph in (True, False) if cuda else (True,):
            label = f"{k}{'' if graph else ', no graph'}"
            row = report["fused"][label] = fused_row(train, test, preset, device, k, victim, graph)
            peak = f"{row['peak_memory_gib']:.2f} GiB" if cuda else "-"
            _say(f"{k} fused victims{'' if graph else ', no graph':10s} {row['images_per_second']:>8,.0f} img/s in "
                 f"total  peak {peak}  ({row['wall_s']:.1f} s)")
    report["concurrent"] = {}
    for n in jobs or []:
        row = report["concurrent"][str(n)] = concurrent_throughput(device, n, data_root, train_size, test_size,
                                                                   epochs, victim)
        _say(f"{n} cells at once (run --jobs {n}): {row['images_per_second']:>8,.0f} img/s in total "
             f"({row['wall_s']:.1f} s)")
    if jobs:  # own-step cells are launch-bound: several at once may add up where standard cells do not
        n = max(jobs)
        for name in own_step_countermeasures():
            row = report["own_step"][f"{name}, --jobs {n}"] = concurrent_throughput(
                device, n, data_root, min(train_size, ADV_IMAGES), min(test_size, ADV_TEST), 1, victim, name)
            _say(f"{n} {name} cells at once (run --jobs {n}): {row['images_per_second']:>8,.0f} img/s in total "
                 f"({row['wall_s']:.1f} s)")
    report["flops_per_training_image"] = training_flops_per_image(victim or paper.model, device)
    report["bf16_matmul_tflops"] = bf16_matmul_tflops(device, 8192 if cuda else 256)
    rate = report["flops_per_training_image"] / (report["bf16_matmul_tflops"] * 1e12)
    for row in [*(report[label] for label, *_ in VARIANTS), *report["fused"].values(), *report["concurrent"].values()]:
        row["peak_fraction"] = row["images_per_second"] * rate
    _say(f"{report['flops_per_training_image'] / 1e9:.2f} GFLOP per training image; bf16 matrix products here: "
         f"{report['bf16_matmul_tflops']:.0f} TFLOP/s; the engine's default step uses "
         f"{100 * report[VARIANTS[0][0]]['peak_fraction']:.1f} % of it"
         + "".join(f"; fused victims {k}: {100 * r['peak_fraction']:.1f} %" for k, r in report["fused"].items()))
    report["projection"] = projection(report, paper, n_methods or len(methods.names()),
                                      n_countermeasures or len(countermeasures.names()))
    p = report["projection"]
    _say(f"paper cell ({paper.epochs} epochs × {PAPER_CELL_IMAGES:,} images): {p['cell_minutes']:.1f} min alone; grid "
         f"of {p['methods']} methods × {p['countermeasures']} countermeasures, one seed, generation and "
         f"pre-processing not included: {p['grid_gpu_hours_one_seed']:.1f} GPU-hours as the grid runs now "
         f"(standard cells {p['standard_via']}); {p['grid_gpu_hours_one_seed_fused']:.1f} with the standard cells "
         f"fused ({p['fused_via']})")
    return report


def projection(report: dict[str, Any], paper: Preset, n_methods: int, n_countermeasures: int) -> dict[str, Any]:
    """One paper cell's minutes and the whole grid's GPU-hours (one seed, generation and pre-processing excluded)
    from the measured speeds. Each own-step countermeasure runs at its best measured speed as cells train it (alone
    or several at once); the standard cells at the best measured speed of separate cells (one, or several at once
    with --jobs: how the grid runs), and, for the second figure, of fused victims too (the grid does not fuse)."""
    single = report[VARIANTS[0][0]]["images_per_second"]
    separate = {"alone": single, **{f"--jobs {j}": r["images_per_second"] for j, r in report["concurrent"].items()}}
    fused = {**separate, **{f"{k} fused": r["images_per_second"] for k, r in report["fused"].items()}}
    best_separate, best_fused = max(separate, key=separate.get), max(fused, key=fused.get)
    cell_images = paper.epochs * PAPER_CELL_IMAGES
    own = own_step_countermeasures()
    # Each own-step countermeasure at its best: alone, or several cells at once (labels "NAME, --jobs N").
    own_rate = {name: max(row["images_per_second"] for label, row in report["own_step"].items()
                          if label == name or label.startswith(f"{name}, --jobs")) for name in own}
    own_s = n_methods * sum(cell_images / rate for rate in own_rate.values())
    standard_cells = n_methods * (n_countermeasures - len(own))

    def hours(rate: float) -> float:
        return (standard_cells * cell_images / rate + own_s) / 3600

    return {"cell_minutes": cell_images / single / 60, "methods": n_methods, "countermeasures": n_countermeasures,
            "standard_via": best_separate, "fused_via": best_fused,
            "own_step_gpu_hours": own_s / 3600, "grid_gpu_hours_one_seed": hours(separate[best_separate]),
            "grid_gpu_hours_one_seed_fused": hours(fused[best_fused])}


def check_dh(device: torch.device, steps: int = 200, images: int = 50_000) -> dict[str, Any]:
    """`dh` and `dh-8` end to end (smoke preset, `steps` hiding-network steps, random-weight tinycnn surrogate,
    1,000 synthetic images), then the paper-size hiding network's time per training step (over `steps`) and its
    generation time over `images` synthetic 32×32 images; prints each as it comes."""
    from methods.dh.method import assign_secrets
    from methods.dh.semantic import procedural_images
    from methods.dh.training import TrainingSettings, hide_all, train_hiding_network

    if steps < 1 or images < 1:
        raise ValueError(f"--dh-steps and --dh-images must be ≥ 1, got {steps} and {images}")
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(DH_IMAGES // 10)
    covers = torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8, generator=gen)
    surrogate = create_model("tinycnn", 10).to(device).eval().requires_grad_(False)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                              "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as cache:
        for name in ("dh", "dh-8"):
            ctx = Context(device, 0, get_preset("smoke"), 10, Path(cache), surrogate_fn=lambda arch: surrogate)
            start = time.perf_counter()
            out = methods.get(name)(steps=steps)(covers, labels, ctx)  # type: ignore[call-arg]
            linf = (out.int() - covers.int()).abs().max().item()
            report[name] = {"seconds": time.perf_counter() - start, "linf_255": linf,
                            "revealed_psnr": ctx.notes["revealed_psnr"], "feature_spread": ctx.notes["feature_spread"]}
            _say(f"{name} {report[name]}")
    paper = methods.get("dh")().settings(get_preset("paper"))  # type: ignore[attr-defined]
    s = TrainingSettings(paper["blocks"], paper["width"], paper["dense_layers"], steps, paper["lr"], paper["per_class"],
                         paper["classes_per_batch"], paper["lfc_weight"], paper["reveal_noise"], 0.0)
    secrets, secret_labels = procedural_images(10, 10, 32, 0)
    resnet = create_model("resnet18", 10).to(device).eval().requires_grad_(False)
    assignment = assign_secrets(labels, secret_labels, "class", gen)
    synchronize(device)
    start = time.perf_counter()
    net, history = train_hiding_network(covers, labels, secrets, assignment, resnet, s, 0, device, quiet)
    synchronize(device)
    step_s = (time.perf_counter() - start) / steps
    full = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=gen)
    assign_full = assign_secrets(torch.arange(images) % 10, secret_labels, "class", gen)
    synchronize(device)
    start = time.perf_counter()
    hide_all(net, full, secrets, assign_full, 0.0, device, quiet)
    synchronize(device)
    report["paper_network"] = {
        "step_ms": 1000 * step_s, "projected_training_min": step_s * paper["steps"] / 60,
        "generation_images": images, "generation_s": time.perf_counter() - start,
        "final_losses": {k: v[-1] for k, v in history.items()},
    }
    _say(f"paper-size network {report['paper_network']}")
    return report
