"""Base classes of the two plugin kinds, their threat model and the context the engine hands them."""
from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F

from . import seeding
from .budget import Budget, check_budget
from .presets import Preset
from .registry import MAIN_SUITE
from .store.cache import ArtifactCache
from .store.keys import artifact_key


@dataclass(frozen=True)
class Strength:
    """A method's one strength knob: the parameter that sets how much it changes an image, how the
    perturbation's mean squared error grows with it, and the values it may take."""

    param: str
    scale: str  # amplitude: MSE ∝ value² (ε, a mix factor); count: MSE ∝ value (pixels); psnr: the value is in dB
    low: float
    high: float
    integer: bool = False

    SCALES: ClassVar[tuple[str, ...]] = ("amplitude", "count", "psnr")

    def __post_init__(self) -> None:
        if self.scale not in self.SCALES:
            raise ValueError(f"unknown strength scale {self.scale!r}; valid scales: {', '.join(self.SCALES)}")

    def value_for(self, value: float, psnr: float, target: float) -> float:
        """The knob value expected to give `target` dB, from one measured pair (`value` gave `psnr` dB),
        within [low, high] and rounded to 3 significant digits (an integer for a count)."""
        if self.scale == "psnr":
            guess = value + (target - psnr)
        else:
            guess = value * 10 ** ((psnr - target) / (20 if self.scale == "amplitude" else 10))
        return self.clip(guess)

    def clip(self, guess: float) -> float:
        """`guess` within [low, high], rounded to 3 significant digits (an integer for a count)."""
        guess = min(max(guess, self.low), self.high)
        return float(round(guess)) if self.integer else float(f"{guess:.3g}")


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
    split_fn: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # what a plugin reports (settings used, stats); stored in rows

    def generator(self, stream: str | int = "default", device: str | torch.device = "cpu") -> torch.Generator:
        """A fresh generator for the named stream of the cell seed (each consumer of randomness uses its own)."""
        return seeding.generator(self.seed, stream, device)

    def fork_rng(self, stream: str | int) -> AbstractContextManager[None]:
        """A block in which torch's global RNG follows the named stream; the global state is restored after."""
        return seeding.global_rng(seeding.stream_seed(self.seed, stream), self.device)

    def artifact(
        self, owner: Plugin, kind: str, spec: dict[str, Any],
        create: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
        """A plugin's cached artifact (a trained network, say): `spec` says what made it; the engine adds the
        plugin's name, version and distribution and the trainer's version, checks the file's SHA-256, and calls
        `create()` on a miss.
        Returns the tensors, the metadata and whether they came from the cache."""
        return ArtifactCache(self.cache_dir).get_or_create(kind, artifact_key(owner, spec), create)

    def surrogate(self, arch: str | None = None) -> torch.nn.Module:
        """A model of `arch` (default: the preset's victim) trained on the clean training set with the
        preset's recipe, cached by the engine; frozen, in eval mode, on `device`."""
        if self.surrogate_fn is None:
            raise RuntimeError("no surrogate models in this context: build it with benchmark.engine.recipe.make_context")
        return self.surrogate_fn(arch or self.preset.model)

    def heldout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean uint8 images and labels of the dataset's training split that are not in the preset's
        training set (what a defender may use to fit a purifier); empty when the preset uses it all."""
        if self.heldout_fn is None:
            raise RuntimeError("no held-out data in this context: build it with benchmark.engine.recipe.make_context")
        return self.heldout_fn()

    def training_split(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The dataset's whole training split (uint8 images, labels) and the positions in it of the preset's
        training images, in the order `generate` receives them."""
        if self.split_fn is None:
            raise RuntimeError("no training split in this context: build it with benchmark.engine.recipe.make_context")
        return self.split_fn()


class Plugin:
    """Shared metadata: name (set by the registry), one-line summary, parameters."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"  # bump when the algorithm changes: every cached artifact and cell of it is then new
    distribution: ClassVar[dict[str, str] | None] = None  # set by the registry for an entry-point plugin
    # A numeric parameter's valid values, (low, high) inclusive, None where unbounded: `build` refuses a value outside
    # them before any work. A preset sentinel (0, say) must lie inside.
    limits: ClassVar[dict[str, tuple[float | None, float | None]]] = {}
    # `main`: the protocol's, selected by `all`; `extra`: beyond it, selected by its name (and `every` takes both)
    suite: ClassVar[str] = MAIN_SUITE

    @classmethod
    def summary(cls) -> str:
        return (inspect.getdoc(cls) or "").split("\n")[0]

    @classmethod
    def param_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []

    def params(self) -> dict[str, Any]:
        """The constructor parameters of this instance (plugins are dataclasses)."""
        return {f.name: getattr(self, f.name) for f in self.param_fields()}

    def settings(self, preset: Preset) -> dict[str, Any]:
        """The settings actually used at `preset` where they differ from `params()`: sentinels resolved
        (e.g. `steps=0` → the preset's steps) and derived values. They enter every key and row."""
        return {}


class Method(Plugin):
    """An unlearnable-example method: subclasses declare `budget` and implement `generate`."""

    cost: ClassVar[float] = 1.0  # rough generation time, in trainings of the preset's victim (for the grid's ETA)
    in_all: ClassVar[bool] = True  # whether `--methods all` includes it (False for controls of an experiment)
    strength: ClassVar[Strength | None] = None  # the knob `frontier` turns; None: the method has none

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fixed = cls.__dict__.get("budget")
        if isinstance(fixed, Budget):  # `budget = Budget(...)`: a threat model that no parameter changes
            cls.budget = lambda self, image_shape=(3, 32, 32): fixed  # type: ignore[method-assign]

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        """This instance's threat model for images of shape C×H×W (override when a parameter or the size sets it)."""
        return Budget("none")

    def with_strength(self, value: float) -> Method:
        """A copy of this method with its strength knob set to `value`."""
        if self.strength is None:
            raise ValueError(f"method {self.name!r} has no strength knob")
        knob = self.strength
        if not knob.low <= value <= knob.high:
            raise ValueError(f"{self.name}.{knob.param} must be in [{knob.low:g}, {knob.high:g}], got {value:g}")
        return dataclasses.replace(self, **{knob.param: int(value) if knob.integer else float(value)})

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        """Protected copy of `images` (uint8 N×3×H×W, same shape)."""
        raise NotImplementedError

    def check(self, images: torch.Tensor, out: Any) -> torch.Tensor:
        """`out` as a protected set of `images`: uint8 of the same shape, within this instance's budget."""
        if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8 or out.shape != images.shape:
            got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"method {self.name!r} must return uint8 {tuple(images.shape)}, got {got}")
        out = out.cpu().contiguous()
        check_budget(self.name, self.budget(tuple(images.shape[1:])), images, out)
        return out

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        return self.check(images, self.generate(images, labels, ctx))


class Countermeasure(Plugin):
    """A countermeasure; it may override any of three stages: preprocess, augment, training_step."""

    family: ClassVar[str] = "none"
    cache_preprocess: ClassVar[bool] = False  # True for costly pre-processing worth keeping on disk
    # Rough time per cell and of `prepare`, in trainings of the preset's victim under `none` (for the grid's ETA).
    cost: ClassVar[float] = 1.0
    prepare_cost: ClassVar[float] = 0.0
    # True when an overridden training_step calls the model in train mode once per step, on the trainer's batch:
    # the trainer may then replay the model's forward and backward as a CUDA graph, as for the standard step.
    graph_step: ClassVar[bool] = False
    # Set by the trainer before training: whether training_step may replay CUDA graphs of its own.
    cuda_graphs: bool = False

    def prepare(self, ctx: Context) -> None:
        """Once per run, before any cell: build what every cell of this countermeasure shares (a fitted
        model, through `ctx.artifact`), so that parallel cells only read it."""

    def setup(self, ctx: Context) -> None:
        """Once per cell, before any stage runs (called by `run_cell`): keep what a stage needs from `ctx`,
        e.g. the preset's epochs, the number of classes, or a generator on the training device."""

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


def parse_value(text: str, kind: type) -> Any:
    """Convert a command-line string to `kind` (bool, int, float or str)."""
    if kind is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if kind in (int, float):
        return kind(text)
    return text


def _field_type(cls: type, f: dataclasses.Field) -> type:
    """A parameter's type from its annotation (`float | None` → float), else from its default's type."""
    try:
        hint = typing.get_type_hints(cls).get(f.name)
    except Exception:  # an annotation that does not resolve in the plugin's module
        hint = None
    options = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    if len(options) == 1 and options[0] in (bool, int, float, str):
        return options[0]
    default = f.default if f.default is not dataclasses.MISSING else None
    return type(default) if isinstance(default, (bool, int, float)) else str


def build(cls: type[Plugin], overrides: dict[str, str]) -> Plugin:
    """Instantiate a plugin with command-line overrides, naming bad parameters and the valid ones."""
    fields = {f.name: f for f in cls.param_fields()}
    kwargs = {}
    for key, text in overrides.items():
        if key not in fields:
            raise ValueError(
                f"{cls.name!r} has no parameter {key!r}; valid parameters: {', '.join(fields) or '(none)'}"
            )
        try:
            kwargs[key] = parse_value(text, _field_type(cls, fields[key]))
        except ValueError as exc:
            raise ValueError(f"bad value for {cls.name}.{key}: {exc}") from None
    plugin = cls(**kwargs)
    for key, value in plugin.params().items():  # a NaN or infinity would pass most range checks
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{cls.name}.{key} must be a finite number, got {value}")
    for key, (low, high) in declared_limits(cls).items():
        value = getattr(plugin, key)
        if (low is not None and value < low) or (high is not None and value > high):
            valid = (f"in [{low:g}, {high:g}]" if low is not None and high is not None
                     else f"≥ {low:g}" if low is not None else f"≤ {high:g}")
            raise ValueError(f"{cls.name}.{key} must be {valid}, got {value:g}")
    return plugin


def declared_limits(cls: type[Plugin]) -> dict[str, tuple[float | None, float | None]]:
    """Every range a plugin declares: its `limits` and, for a method, its strength knob's."""
    knob = getattr(cls, "strength", None)
    return {**cls.limits, **({knob.param: (knob.low, knob.high)} if knob is not None else {})}
