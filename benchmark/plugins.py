"""Base classes of the two plugin kinds, their threat model and the context the engine hands them."""
from __future__ import annotations

import dataclasses
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch
import torch.nn.functional as F

from .presets import Preset


@dataclass(frozen=True)
class Budget:
    """A threat model: `linf`/`l2` radius in [0,1] pixel units, `l0` pixel positions, or `none`."""

    norm: str
    eps: float = 0.0

    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2", "l0", "none")

    def __post_init__(self) -> None:
        if self.norm not in self.NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid norms: {', '.join(self.NORMS)}")

    def __str__(self) -> str:
        if self.norm == "none":
            return "unbounded (reports PSNR/SSIM)"
        if self.norm == "linf":
            return f"L∞ ≤ {self.eps * 255:g}/255"
        if self.norm == "l0":
            return f"L0 ≤ {self.eps:g} pixel{'s' if self.eps != 1 else ''}"
        return f"L2 ≤ {self.eps:.4g}"


@dataclass
class Context:
    """What a plugin may use: device, seed, preset, cache folder, progress bars, and on demand a
    clean surrogate model and clean images held out from the training set."""

    device: torch.device
    seed: int
    preset: Preset
    num_classes: int
    cache_dir: Path
    progress: Callable[..., Any] = field(default=lambda iterable=None, **kw: iterable)
    surrogate_fn: Callable[[str], torch.nn.Module] | None = None
    heldout_fn: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # what a plugin reports (settings used, stats); stored in rows

    def generator(self, stream: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
        """A fresh generator seeded by the cell seed and a plugin-chosen stream number."""
        return torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + stream)

    def surrogate(self, arch: str | None = None) -> torch.nn.Module:
        """A model of `arch` (default: the preset's victim) trained on the clean training set with the
        preset's recipe, cached by the engine; frozen, in eval mode, on `device`."""
        if self.surrogate_fn is None:
            raise RuntimeError("no surrogate models in this context: build it with benchmark.runner.make_context")
        return self.surrogate_fn(arch or self.preset.model)

    def heldout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean uint8 images and labels of the dataset's training split that are not in the preset's
        training set (what a defender may use to fit a purifier); empty when the preset uses it all."""
        if self.heldout_fn is None:
            raise RuntimeError("no held-out data in this context: build it with benchmark.runner.make_context")
        return self.heldout_fn()


@contextmanager
def global_rng_from(gen: torch.Generator) -> Iterator[None]:
    """Seed torch's global RNG from `gen` for the duration of the block, then restore it.

    For library code that draws from the global RNG (kornia, torchvision.transforms.v2, torchattacks):
    its draws then follow `gen`, so a run is reproducible under a seed, and the caller's global stream
    is left as it was."""
    seed = int(torch.randint(0, 2**62, (), generator=gen, device=gen.device))
    devices = []
    if gen.device.type == "cuda":
        devices = [gen.device.index if gen.device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class Plugin:
    """Shared metadata: name (set by the registry), one-line summary, parameters."""

    name: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        return (inspect.getdoc(cls) or "").split("\n")[0]

    @classmethod
    def param_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []

    def params(self) -> dict[str, Any]:
        """The constructor parameters of this instance (plugins are dataclasses)."""
        return {f.name: getattr(self, f.name) for f in self.param_fields()}


class Method(Plugin):
    """An unlearnable-example method: subclasses set `budget` and implement `generate`."""

    budget: ClassVar[Budget] = Budget("none")

    def budget_for(self, image_shape: tuple[int, ...]) -> Budget:
        """The threat model for images of shape C×H×W (override when it scales with size)."""
        return self.budget

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        """Protected copy of `images` (uint8 N×3×H×W, same shape)."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        out = self.generate(images, labels, ctx)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8 or out.shape != images.shape:
            got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"method {self.name!r} must return uint8 {tuple(images.shape)}, got {got}")
        return out.cpu().contiguous()


class Countermeasure(Plugin):
    """A countermeasure; it may override any of three stages: preprocess, augment, training_step."""

    family: ClassVar[str] = "none"
    cache_preprocess: ClassVar[bool] = False  # True for costly pre-processing worth keeping on disk

    def setup(self, ctx: Context) -> None:
        """Once per cell, before any stage runs (called by `run_cell`): keep what a stage needs from `ctx`,
        e.g. the preset's epochs, the number of classes, or a generator on the training device."""

    def effective_params(self) -> dict[str, Any]:
        """The settings actually used after `setup` (stored in the result row): `params()` plus derived ones."""
        return self.params()

    def preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        """Once per training set: uint8 N×3×H×W in, uint8 of the same shape out."""
        return images

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per batch, on the training device: float images in [0,1] and labels (indices or soft)."""
        return x, y

    def training_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        """The loss of one batch; override to replace the standard step (e.g. adversarial training)."""
        return F.cross_entropy(model(x), y)

    @classmethod
    def stages(cls) -> list[str]:
        """The stages this countermeasure overrides."""
        return [s for s in ("preprocess", "augment", "training_step") if getattr(cls, s) is not getattr(Countermeasure, s)]

    def run_preprocess(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        """`preprocess` with its output checked."""
        out = self.preprocess(images, labels, ctx)
        if out.dtype != torch.uint8 or out.shape != images.shape:
            raise TypeError(
                f"countermeasure {self.name!r} preprocess must return uint8 {tuple(images.shape)}, "
                f"got {out.dtype} {tuple(out.shape)}"
            )
        return out.cpu().contiguous()


def parse_value(text: str, like: Any) -> Any:
    """Convert a command-line string to the type of a parameter's default value."""
    if isinstance(like, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def build(cls: type[Plugin], overrides: dict[str, str]) -> Plugin:
    """Instantiate a plugin with command-line overrides, naming bad parameters and the valid ones."""
    fields = {f.name: f for f in cls.param_fields()}
    kwargs = {}
    for key, text in overrides.items():
        if key not in fields:
            raise ValueError(
                f"{cls.name!r} has no parameter {key!r}; valid parameters: {', '.join(fields) or '(none)'}"
            )
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        try:
            kwargs[key] = parse_value(text, default)
        except ValueError as exc:
            raise ValueError(f"bad value for {cls.name}.{key}: {exc}") from None
    return cls(**kwargs)
