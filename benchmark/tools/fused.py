"""Several cells' victims trained at once in one process: the models stacked with `torch.func`, one fused step.

Each job is what `train_victim` would train for one cell: its own (pre-processed) training images, its own
countermeasure, seed and therefore its own initialisation, batch order and augmentation stream. The jobs share
the architecture, the preset's recipe, the training-set size and the test set. Their parameters and buffers
are stacked (`stack_module_state`), one `vmap(functional_call)` runs every model's forward on its own batch,
and one backward through the sum of the per-model losses gives each model its own gradient (the parameters
are disjoint). The SGD update is elementwise and the learning rate the same for every model, so one
`torch.optim.SGD` over the stacked tensors is K separate optimizers. Evaluation copies a model's slice into a
real module and runs `evaluate`, so it is the same code as `train_victim`'s.

A countermeasure that overrides `training_step` (adversarial training, UEraser's max over copies) runs its
own step on one model and cannot be fused; `train_victims_fused` refuses it, as it refuses mixed victims or
training-set sizes. Agreement with separately trained victims is within float tolerance, not bit for bit: a
vmapped convolution is one grouped convolution over the K models, which sums in another order
(`tests/test_fused.py`; [Performance](../docs/performance.md#fused-victims))."""
from __future__ import annotations

import copy
import math
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from ..evaluation import evaluate
from ..models import create_model
from ..plugins import Countermeasure
from ..presets import Preset
from ..seeding import generator, global_rng, stream_seed
from ..training import (
    TrainingDiverged,
    TrainResult,
    capture_cuda_graph,
    lr_lambda,
    mixed_precision,
    random_crop_flip,
    release_cuda_graph,
)


class NotFusable(ValueError):
    """The jobs cannot share one fused training loop (the message says why and which jobs)."""


@dataclass
class FusedJob:
    """One cell's victim: uint8 training images (already pre-processed by the countermeasure), their labels,
    the countermeasure (set up, as for `train_victim`), the cell seed and the victim (default: the preset's)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    countermeasure: Countermeasure
    seed: int
    victim: str | None = None


def fusable(countermeasure: Countermeasure) -> bool:
    """Whether a countermeasure keeps the standard training step, so its victim can be fused with others."""
    return "training_step" not in countermeasure.stages()


def _describe(job: FusedJob, index: int) -> str:
    """`'cutout' (job 1, seed 0)`: a job as error messages name it."""
    return f"{job.countermeasure.name or type(job.countermeasure).__name__!r} (job {index}, seed {job.seed})"


def check_fusable(jobs: list[FusedJob], preset: Preset) -> str:
    """The victim every job trains; raises NotFusable when the jobs cannot be trained together."""
    if not jobs:
        raise NotFusable("no jobs to train")
    own_step = [_describe(job, i) for i, job in enumerate(jobs) if not fusable(job.countermeasure)]
    if own_step:
        raise NotFusable(
            f"countermeasure {', '.join(own_step)} overrides training_step, so its victim cannot share a fused "
            "step; train it alone with train_victim"
        )
    victims = [job.victim or preset.model for job in jobs]
    if len(set(victims)) > 1:
        by_victim = {v: [str(i) for i, w in enumerate(victims) if w == v] for v in dict.fromkeys(victims)}
        listed = "; ".join(f"{v}: jobs {', '.join(idx)}" for v, idx in by_victim.items())
        raise NotFusable(f"jobs train different victim architectures ({listed}); fuse one architecture at a time")
    sizes = [len(job.train_images) for job in jobs]
    if len(set(sizes)) > 1:
        raise NotFusable(f"jobs have different training-set sizes ({', '.join(map(str, sizes))} images); "
                         "every fused model takes the same number of steps, so the sizes must match")
    shapes = {tuple(job.train_images.shape[1:]) for job in jobs}
    if len(shapes) > 1:
        raise NotFusable(f"jobs have different image shapes: {sorted(shapes)}")
    for i, job in enumerate(jobs):
        if job.train_images.dtype != torch.uint8:
            raise NotFusable(f"{_describe(job, i)}: training images must be uint8, got {job.train_images.dtype}")
        if len(job.train_labels) != len(job.train_images):
            raise NotFusable(f"{_describe(job, i)}: {len(job.train_labels)} labels for {len(job.train_images)} images")
    return victims[0]


class StackedModels(torch.nn.Module):
    """K models of one architecture as one module: stacked parameters and buffers, and a forward that runs model
    k on batch k of a K×B×... input with `vmap(functional_call)`; being a module, it can be CUDA-graphed."""

    def __init__(self, models: list[torch.nn.Module]) -> None:
        super().__init__()
        # Stacked from channels_last weights, as train_victim's: vmap's grouped convolution then takes the same
        # kind of kernel (on the CPU, one step ends within ~1e-7 of train_victim's; from NCHW weights ~1e-5, as
        # far as train_victim with channels_last=False is from itself).
        params, buffers = stack_module_state(models)
        # Dotted state names are not attribute names: stored with "/" for "." and mapped back in forward.
        for name, tensor in params.items():
            self.register_parameter(name.replace(".", "/"), torch.nn.Parameter(tensor.detach()))
        for name, tensor in buffers.items():
            self.register_buffer(name.replace(".", "/"), tensor)
        self._base = [copy.deepcopy(models[0]).to("meta")]  # the architecture only (a list: not a submodule)
        self._vmapped = vmap(self._one)  # randomness="error": a random op inside a victim is refused, not shared

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._base[0], (params, buffers), (x,))

    def stacked_state(self) -> dict[str, torch.Tensor]:
        """Every stacked parameter and buffer under its model's state-dict name (views of this module's tensors)."""
        return {name.replace("/", "."): t for name, t in [*self.named_parameters(), *self.named_buffers()]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {name.replace("/", "."): p for name, p in self.named_parameters()}
        buffers = {name.replace("/", "."): b for name, b in self.named_buffers()}
        return self._vmapped(params, buffers, x)


@contextmanager
def _quiet_vmap() -> Iterator[None]:
    """vmap falls back to a loop for one op of adaptive_avg_pool2d's and says so in every process; the cost is in
    docs/performance.md, not news in a training log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
        yield


@torch.no_grad()
def _load_slice(model: torch.nn.Module, stacked: dict[str, torch.Tensor], k: int) -> None:
    """Copy model `k`'s slice of the stacked parameters and buffers into `model`."""
    for name, tensor in model.state_dict().items():
        tensor.copy_(stacked[name][k])


def train_victims_fused(
    jobs: list[FusedJob],
    preset: Preset,
    device: torch.device,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    progress: Callable[..., Any] = lambda it, **kw: it,
    amp: bool = True,
    cuda_graph: bool = True,
    on_eval: Callable[[int, int, torch.nn.Module], None] | None = None,
) -> list[TrainResult]:
    """Train every job's victim with the preset's recipe in one fused loop; one `TrainResult` per job, in order.

    Each model starts from `train_victim`'s initialisation for its seed and draws its batch order, crop/flip and
    countermeasure augmentation from its own `victim/batches` stream, as `train_victim` does; it is evaluated
    at the same epochs. `amp`: bf16 autocast on CUDA; `cuda_graph`: on CUDA, replay the fused forward and
    backward as CUDA graphs, as `train_victim` does for one model. `on_eval(job, epoch, model)`: called
    after each job's evaluation. A result's `seconds` is the whole fused run's training time and its
    `images_per_second` that job's images over it (the sum over jobs is the fused throughput). Raises
    NotFusable (see `check_fusable`) before any work, TrainingDiverged naming the jobs whose loss diverged."""
    victim = check_fusable(jobs, preset)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    models = []
    for job in jobs:
        with global_rng(stream_seed(job.seed, "victim/init")):  # train_victim's initialisation for this seed
            models.append(create_model(victim, num_classes).to(device, memory_format=torch.channels_last).train())
    stacked_model = StackedModels(models)
    stacked = stacked_model.stacked_state()
    images = [job.train_images.to(device) for job in jobs]
    labels = [job.train_labels.to(device) for job in jobs]
    n = len(images[0])
    bs = min(preset.batch_size, n)
    steps = n // bs
    opt = torch.optim.SGD(
        list(stacked_model.parameters()), lr=preset.lr, momentum=preset.momentum,
        weight_decay=preset.weight_decay, nesterov=preset.nesterov,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(preset, steps))
    gens = [generator(job.seed, "victim/batches", device) for job in jobs]
    graphed = device.type == "cuda" and cuda_graph
    mixed = mixed_precision(device, jobs[0].countermeasure, amp)
    # Graph capture refuses autocast's weight cache.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not graphed) if mixed else nullcontext()
    if graphed:  # every step's stacked batch has this shape; no draw from the jobs' streams
        sample = torch.stack([imgs[:bs] for imgs in images]).float().div(255)
        with _quiet_vmap():
            capture_cuda_graph(stacked_model, sample, autocast)
    histories: list[list[tuple[int, float]]] = [[] for _ in jobs]
    start = time.perf_counter()
    bar = progress(range(preset.epochs), desc=f"train ×{len(jobs)}", unit="epoch", leave=False)
    for epoch in bar:
        orders = [torch.randperm(n, generator=gen, device=device) for gen in gens]
        total_loss = torch.zeros(len(jobs), device=device)
        for i in range(steps):
            xs, ys = [], []
            for job, imgs, labs, order, gen in zip(jobs, images, labels, orders, gens):
                idx = order[i * bs : (i + 1) * bs]
                x = random_crop_flip(imgs[idx].float().div_(255), gen)
                x, y = job.countermeasure.augment(x, labs[idx], gen)
                xs.append(x)
                ys.append(y)
            with autocast, _quiet_vmap():
                logits = stacked_model(torch.stack(xs))
                # The standard step's loss per model, as Countermeasure.training_step computes it; labels may be
                # indices for one job and soft for another (label mixing), so not one stacked call.
                losses = torch.stack([F.cross_entropy(logits[k], y) for k, y in enumerate(ys)])
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # d(sum)/d(loss_k) = 1: each model gets exactly its own loss's gradient
            opt.step()
            sched.step()
            total_loss += losses.detach().float()
        mean_loss = (total_loss / steps).tolist()
        diverged = [f"{_describe(job, k)}: loss {loss}" for k, (job, loss) in enumerate(zip(jobs, mean_loss))
                    if not math.isfinite(loss)]
        if diverged:
            raise TrainingDiverged(f"loss became non-finite during epoch {epoch + 1} in {'; '.join(diverged)}")
        if epoch == preset.epochs - 1 or (epoch + 1) % preset.eval_every == 0:
            for k, model in enumerate(models):
                _load_slice(model, stacked, k)
                histories[k].append((epoch + 1, evaluate(model, test_images, test_labels, device)))
                if on_eval is not None:
                    on_eval(k, epoch + 1, model)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=" ".join(f"{loss:.3f}" for loss in mean_loss))
    seconds = time.perf_counter() - start
    if graphed:
        release_cuda_graph(stacked_model)
    results = []
    for k, (job, model, history) in enumerate(zip(jobs, models, histories)):
        _load_slice(model, stacked, k)
        results.append(TrainResult(
            final_acc=history[-1][1],
            peak_acc=max(acc for _, acc in history),
            train_acc=evaluate(model, job.train_images, job.train_labels, device),
            history=history,
            seconds=seconds,
            images_per_second=preset.epochs * steps * bs / seconds,
            cuda_graph=graphed,
            model=model,
        ))
    return results
