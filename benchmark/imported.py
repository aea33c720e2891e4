"""Protected sets made elsewhere (`--methods file:PATH`) and the export of ours in the same formats."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .identity import CONTENT
from .plugins import Budget, Context, Method

PREFIX = "file:"
FORMATS = (".npz", ".pt (uint8 images, or a float perturbation)", "a folder of PNG images")
BUDGET_UNITS = {"linf": 255.0, "l2": 1.0, "l0": 1.0}  # linf in 1/255 steps, l2 in [0, 1] pixel units, l0 pixels


def parse_budget(text: str) -> Budget:
    """`linf:8` (1/255 steps), `l2:1.0` (pixel units in [0, 1]), `l0:1` (pixel positions) or `none`."""
    norm, _, value = text.partition(":")
    if norm == "none" and not value:
        return Budget("none")
    if norm not in BUDGET_UNITS or not value:
        raise ValueError(f"bad budget {text!r}; valid forms: linf:8 (1/255 steps), l2:1.0, l0:1, none")
    try:
        eps = float(value) / BUDGET_UNITS[norm]
    except ValueError:
        raise ValueError(f"bad budget {text!r}: {value!r} is not a number") from None
    if not eps >= 0:
        raise ValueError(f"bad budget {text!r}: the radius must be ≥ 0")
    return Budget(norm, eps)


def _to_nchw(x: np.ndarray | torch.Tensor, source: str) -> torch.Tensor:
    """uint8 images N×H×W×3 (as numpy code saves them) or N×3×H×W as a uint8 N×3×H×W tensor."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if t.dtype != torch.uint8 or t.ndim != 4 or 3 not in (t.shape[1], t.shape[3]):
        raise ValueError(f"{source}: images must be uint8 N×H×W×3 or N×3×H×W, got {t.dtype} {tuple(t.shape)}")
    return (t if t.shape[1] == 3 else t.permute(0, 3, 1, 2)).contiguous()


def _read_png_folder(folder: Path) -> dict[str, torch.Tensor]:
    """PNG images named by their position in the training split: in one folder (`123.png`, as ISS reads them;
    APBench writes them to `data/123.png`), or in one sub-folder per class (`3/123.png`, `cat/123.png`,
    labels: the number, else the sorted order of the names). Images, positions and, for classes, labels."""
    from PIL import Image

    files = sorted(folder.rglob("*.png"))
    if not files:
        raise ValueError(f"{folder}: no PNG images")
    try:
        positions = [int(f.stem) for f in files]
    except ValueError:
        bad = next(f for f in files if not f.stem.isdigit())
        raise ValueError(f"{folder}: PNG names must be positions in the training split (e.g. 00042.png), got {bad.name}") from None
    images = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))) for f in files])
    out = {"x": images.permute(0, 3, 1, 2).contiguous(), "indices": torch.tensor(positions)}
    parents = sorted({f.parent for f in files})
    if len(parents) > 1:  # class folders: numbers are labels, names count in sorted order (CIFAR's order)
        numbered = all(p.name.isdigit() for p in parents)
        label = {p: int(p.name) if numbered else i for i, p in enumerate(parents)}
        out["y"] = torch.tensor([label[f.parent] for f in files])
    return out


def read_protected(path: str | Path) -> dict[str, torch.Tensor]:
    """`x` (uint8 N×3×H×W) and, when the file has them, `y` (labels) and `indices` (positions in the
    dataset's training split), without unpickling anything."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_png_folder(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    elif path.suffix == ".pt":
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(loaded, torch.Tensor) and loaded.is_floating_point():
            return {"delta": _perturbation(loaded, str(path))}
        arrays = loaded if isinstance(loaded, dict) else {"x": loaded}
    else:
        raise ValueError(f"{path}: unknown format; valid formats: {', '.join(FORMATS)}")
    if "x" not in arrays:
        raise ValueError(f"{path}: no `x` array of images (found: {', '.join(arrays) or 'nothing'})")
    out = {"x": _to_nchw(arrays["x"], str(path))}
    for key in ("y", "indices"):
        if key in arrays:
            out[key] = torch.as_tensor(np.asarray(arrays[key])).long().flatten()
    return out


def _perturbation(delta: torch.Tensor, source: str) -> torch.Tensor:
    """A float perturbation N×3×H×W (or one per class) in [-1, 1] pixel units, as EM's official code saves it."""
    if delta.ndim != 4 or delta.shape[1] != 3 or delta.abs().max() > 1:
        raise ValueError(f"{source}: a float tensor must be a perturbation N×3×H×W in [-1, 1], got "
                         f"{tuple(delta.shape)} with max |δ| {delta.abs().max().item():.3g}")
    return delta.float()


def _apply(delta: torch.Tensor, split_images: torch.Tensor, split_labels: torch.Tensor, source: str) -> torch.Tensor:
    """Clean images plus a sample-wise (one per image) or class-wise (one per class) perturbation, in uint8."""
    if len(delta) != len(split_images):
        classes = int(split_labels.max()) + 1
        if len(delta) != classes:
            raise ValueError(f"{source}: {len(delta)} perturbations, the training split has {len(split_images)} "
                             f"images and {classes} classes")
        delta = delta[split_labels]
    return (split_images.float() + delta * 255).round_().clamp_(0, 255).to(torch.uint8)


def place(path: str | Path, split_images: torch.Tensor, split_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The imported images at their positions in the training split: (images, positions), checked against
    the split's count, shape and labels; each problem is an error that names the numbers."""
    data = read_protected(path)
    if "delta" in data:
        data = {"x": _apply(data["delta"], split_images, split_labels, str(path))}
    x, n = data["x"], len(split_images)
    if x.shape[1:] != split_images.shape[1:]:
        raise ValueError(f"{path}: images are {tuple(x.shape[1:])}, the training split's are {tuple(split_images.shape[1:])}")
    positions = data.get("indices")
    if positions is None:
        if len(x) != n:
            raise ValueError(f"{path}: {len(x)} images, the training split has {n}; give `indices` (positions in "
                             "the split) to import a part of it")
        positions = torch.arange(n)
    else:
        if len(positions) != len(x):
            raise ValueError(f"{path}: {len(x)} images but {len(positions)} indices")
        out_of_range = int(((positions < 0) | (positions >= n)).sum())
        if out_of_range:
            raise ValueError(f"{path}: {out_of_range} indices outside the training split's 0..{n - 1}")
        if len(positions.unique()) != len(positions):
            raise ValueError(f"{path}: {len(positions) - len(positions.unique())} repeated indices")
    if "y" in data:
        if len(data["y"]) != len(x):
            raise ValueError(f"{path}: {len(x)} images but {len(data['y'])} labels")
        wrong = int((data["y"] != split_labels[positions]).sum())
        if wrong:
            raise ValueError(f"{path}: {wrong} of {len(x)} labels disagree with the dataset's at the same positions")
    if torch.equal(x, split_images[positions]):
        warnings.warn(f"{path}: the imported images are identical to the clean ones", stacklevel=2)
    return x, positions


@dataclass
class ImportedSet(Method):
    """A protected set made elsewhere, read from a file (`--methods file:PATH`), checked like a plugin's output."""

    path: str = field(default="", metadata=CONTENT)
    budget_spec: str = "none"  # `--budget NAME=linf:8`: the threat model the engine checks

    def __post_init__(self) -> None:
        source = Path(self.path).expanduser()
        if not source.exists():
            raise FileNotFoundError(f"file:{self.path}: no such file or folder; valid formats: {', '.join(FORMATS)}")
        self.name = source.stem  # type: ignore[misc]  # the method's name is the file's stem
        self._budget = parse_budget(self.budget_spec)

    def budget(self, image_shape: tuple[int, ...] = (3, 32, 32)) -> Budget:
        return self._budget

    def generate(self, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> torch.Tensor:
        split_images, split_labels, mine = ctx.training_split()
        x, positions = place(self.path, split_images, split_labels)
        lookup = torch.full((len(split_images),), -1, dtype=torch.long)
        lookup[positions] = torch.arange(len(positions))
        row = lookup[mine]
        out = images.clone()
        out[row >= 0] = x[row[row >= 0]]
        ctx.notes.update(imported=str(self.path), imported_images=len(x), protected_here=int((row >= 0).sum()))
        return out


def export(images: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor, out: str | Path) -> Path:
    """Write a protected set as `.npz` (x N×H×W×3 uint8, y, indices), `.pt` (the same as tensors, x N×3×H×W)
    or, for a folder, one PNG per image named by its position, in one sub-folder per class."""
    from PIL import Image

    out = Path(out)
    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, x=images.permute(0, 2, 3, 1).numpy(), y=labels.numpy(), indices=positions.numpy())
    elif out.suffix == ".pt":
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": images.contiguous(), "y": labels.clone(), "indices": positions.clone()}, out)
    elif not out.suffix:
        width = len(str(int(positions.max()))) if len(positions) else 1
        for image, label, position in zip(images, labels.tolist(), positions.tolist()):
            folder = out / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{position:0{width}d}.png")
    else:
        raise ValueError(f"export to {out}: valid targets are FILE.npz, FILE.pt or a folder (no suffix)")
    return out
