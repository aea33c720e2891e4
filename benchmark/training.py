"""Victim training with the whole training set held as one uint8 tensor on the device."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F

from .evaluation import evaluate
from .models import create_model
from .presets import Preset
from .seeding import generator, global_rng, stream_seed

CROP_PADDING = 4
# Bump when a change here (or in a built-in victim network) changes what training produces: it is part of
# every cell's and surrogate's identity, so finished cells and cached surrogates of the old code are not reused.
# 4: evaluation with the batch norms folded into the convolutions (benchmark/folding.py).
# 3: evaluation in 128-image batches on a CPU, and every CPU task at one torch thread (benchmark/engine/local.py).
TRAINER_VERSION = "4"


class Regime(Protocol):
    """What the trainer asks of a countermeasure (`benchmark.plugins.Countermeasure` is one)."""

    graph_step: bool
    cuda_graphs: bool

    def stages(self) -> list[str]: ...

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...

    def training_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor: ...


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """Accuracies in [0,1]; `history` holds (epoch, test accuracy) at every evaluation."""

    final_acc: float
    peak_acc: float
    train_acc: float
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    cuda_graph: bool = False
    model: torch.nn.Module | None = field(default=None, repr=False)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """RandomCrop(H, padding, zero fill) + horizontal flip for a float batch, in one gather."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=x.device)
    flip = torch.rand(b, 1, generator=gen, device=x.device) < 0.5
    rows = dy + torch.arange(h, device=x.device)
    cols = dx + torch.arange(w, device=x.device)
    cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices split by a slice put the indexed dims first: the result is B×H×W×C.
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over `warmup` steps, then cosine to zero at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def lr_lambda(preset: Preset, steps_per_epoch: int) -> Callable[[int], float]:
    """The preset's schedule per step: warm-up epochs, then cosine decay to zero over the whole run."""
    return warmup_cosine(preset.epochs * steps_per_epoch, int(preset.warmup_epochs * steps_per_epoch))


def capture_cuda_graph(model: torch.nn.Module, sample: torch.Tensor, autocast: Any) -> None:
    """Replace the model's training-mode forward and backward by CUDA graphs captured on `sample`'s shape.

    A ResNet-18 step on a 128-image batch launches hundreds of small kernels and is bound by the launch cost,
    not by the GPU; a replayed graph launches them at once. Eval mode keeps the plain forward."""
    for module in model.modules():  # layers fitted to the first batch (airbench's whitening) fit before the capture
        if hasattr(module, "fit_once"):
            module.fit_once(sample)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with autocast:
        torch.cuda.make_graphed_callables(model, (sample,))
    model.load_state_dict(saved)  # the capture's warm-up passes moved the BatchNorm statistics


class InputGradient:
    """The gradient of the cross-entropy of `model` with respect to its input, at one batch shape, replayed as a
    CUDA graph: an attack's forward and backward passes without their launch cost. The model must be in the
    mode it was captured in (eval for an attack) at every call; its parameters may change in place."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model = model
        self._x = x.detach().clone().requires_grad_(True)
        self._y = y.detach().clone()
        side = torch.cuda.Stream()  # warm-up passes (cuDNN's choice of kernels) off the capturing stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._gradient()
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._grad = self._gradient()

    def _gradient(self) -> torch.Tensor:
        loss = F.cross_entropy(self.model(self._x), self._y)
        return torch.autograd.grad(loss, self._x)[0]

    def matches(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether this graph computes the gradient for this model and these shapes."""
        return model is self.model and x.shape == self._x.shape and y.shape == self._y.shape

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ₓ CE(model(x), y); the returned tensor is overwritten by the next call."""
        with torch.no_grad():
            self._x.copy_(x)
            self._y.copy_(y)
        self._graph.replay()
        return self._grad


def release_cuda_graph(model: torch.nn.Module) -> None:
    """Give the model back its plain forward (the graph only accepts the captured batch shape)."""
    model.__dict__.pop("forward", None)


def mixed_precision(device: torch.device, countermeasure: Regime, amp: bool = True) -> bool:
    """Whether the victim's steps run under bf16 autocast: on CUDA with `amp`, for the standard step only. A
    countermeasure's own step (PGD, a max over augmented copies) runs in fp32 everywhere, so that it is the same
    countermeasure on a GPU as on the CPU."""
    return device.type == "cuda" and amp and "training_step" not in countermeasure.stages()


def train_victim(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    preset: Preset,
    countermeasure: Regime,
    seed: int,
    device: torch.device,
    progress: Callable[..., Any] = lambda it, **kw: it,
    amp: bool = True,
    channels_last: bool = True,
    cuda_graph: bool = True,
    victim: str | None = None,
    on_eval: Callable[[int, torch.nn.Module], None] | None = None,
) -> TrainResult:
    """Train `victim` (default: the preset's) with the preset's recipe on uint8 training images and report clean
    test accuracy
    (`amp`: bf16 autocast on CUDA; `channels_last`: NHWC memory layout; `cuda_graph`: on CUDA, replay the
    model's forward and backward as CUDA graphs when the countermeasure keeps the standard training step or
    declares its own step graphable (`graph_step`), and let its own step replay graphs of its own;
    `on_eval(epoch, model)`: called after each evaluation, to measure more than the test accuracy)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with global_rng(stream_seed(seed, "victim/init")):
        model = create_model(victim or preset.model, num_classes).to(device, memory_format=layout)
    images, labels = train_images.to(device), train_labels.to(device)
    n = len(images)
    bs = min(preset.batch_size, n)
    steps = n // bs
    opt = torch.optim.SGD(
        model.parameters(), lr=preset.lr, momentum=preset.momentum,
        weight_decay=preset.weight_decay, nesterov=preset.nesterov,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(preset, steps))
    gen = generator(seed, "victim/batches", device)
    own_step = "training_step" in countermeasure.stages()
    graphed = cuda and cuda_graph and (not own_step or countermeasure.graph_step)
    countermeasure.cuda_graphs = cuda and cuda_graph
    # Graph capture refuses autocast's weight cache.
    mixed = mixed_precision(device, countermeasure, amp)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not graphed) if mixed else nullcontext()
    if graphed:  # every step's batch has this shape (augmentations keep it); no draw from `gen`
        capture_cuda_graph(model, images[:bs].float().div(255).contiguous(memory_format=layout), autocast)
    history: list[tuple[int, float]] = []
    start = time.perf_counter()
    bar = progress(range(preset.epochs), desc="train", unit="epoch", leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=gen, device=device)
        total_loss = torch.zeros((), device=device)  # summed on the device: no host sync per step
        for i in range(steps):
            idx = order[i * bs : (i + 1) * bs]
            x = random_crop_flip(images[idx].float().div_(255), gen)
            x, y = countermeasure.augment(x, labels[idx], gen)
            x = x.contiguous(memory_format=layout)
            with autocast:
                loss = countermeasure.training_step(model, x, y, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.detach().float()
        mean_loss = total_loss.item() / steps
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"loss became {mean_loss} during epoch {epoch + 1}")
        last = epoch == preset.epochs - 1
        if last or (epoch + 1) % preset.eval_every == 0:
            history.append((epoch + 1, evaluate(model, test_images, test_labels, device)))
            if on_eval is not None:
                on_eval(epoch + 1, model)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{mean_loss:.3f}", test=f"{history[-1][1]:.3f}" if history else "-")
    seconds = time.perf_counter() - start
    if graphed:
        release_cuda_graph(model)
    return TrainResult(
        final_acc=history[-1][1],
        peak_acc=max(acc for _, acc in history),
        train_acc=evaluate(model, train_images, train_labels, device),
        history=history,
        seconds=seconds,
        images_per_second=preset.epochs * steps * bs / seconds,
        cuda_graph=graphed,
        model=model,
    )
