"""What made a number: canonical hashes of plugin, preset and data identities, and the provenance of a run."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from .presets import Preset

# Dataclass field metadata of a plugin parameter that names a file or folder: its content, not its path,
# is part of every key, so new weights or images at the same path make a new setting.
CONTENT: dict[str, bool] = {"content": True}
# Field metadata of a parameter added after results were published: at its default it is left out of every key,
# so the cells it cannot have changed keep their ids (the new behaviour is reached only by setting it).
ADDED: dict[str, bool] = {"added": True}
LIBRARIES = ("torch", "torchvision", "kornia", "torchattacks", "diffusers", "Pillow", "numpy", "pandas")


def canonical(obj: Any) -> str:
    """Stable JSON text of `obj` (sorted keys, no spaces); non-finite floats are refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_jsonable)


def _jsonable(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} {obj!r} has no canonical form for an identity hash; "
                    "settings must be numbers, strings, booleans, None, lists or dicts")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted key → leaf value (`method.settings.eps`), so a difference names its exact entry;
    {} for anything but a dict."""
    if not isinstance(obj, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        flat |= flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
    return flat


def digest(obj: Any) -> str:
    """Full SHA-256 (64 hex digits) of `obj`'s canonical JSON."""
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


def tensor_digest(*tensors: torch.Tensor) -> str:
    """Full SHA-256 of the tensors' bytes, shapes and dtypes."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=32)
def _content_digest(path: str, signature: tuple) -> str:
    """SHA-256 of a file, or of every file under a folder with its relative path; `signature` keys the memo."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() if f != root else b"")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's or folder's content (memoised while names, sizes and mtimes stay the same)."""
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise FileNotFoundError(f"{path} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return _content_digest(str(root), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


class Plugin(Protocol):
    """What an identity reads of a plugin (`benchmark.plugins.Plugin` is one)."""

    name: str

    def param_fields(self) -> list[dataclasses.Field]: ...

    def params(self) -> dict[str, Any]: ...

    def settings(self, preset: Preset) -> dict[str, Any]: ...


def effective_settings(plugin: Plugin, preset: Preset) -> dict[str, Any]:
    """The parameters with the preset's values in place of their sentinels, plus derived settings;
    content parameters are replaced by the SHA-256 of what they point at."""
    fields = plugin.param_fields()
    added = {f.name for f in fields if f.metadata.get("added") and getattr(plugin, f.name) == f.default}
    settings = {**{k: v for k, v in plugin.params().items() if k not in added}, **plugin.settings(preset)}
    for f in fields:
        if f.metadata.get("content") and settings.get(f.name):
            settings[f.name] = "sha256:" + content_digest(settings[f.name])
    return settings


def plugin_code(plugin: Plugin | type) -> dict[str, Any]:
    """The code that a plugin's results depend on: its name, declared version and, for an entry-point
    plugin, the distribution that installed it."""
    return {
        "name": plugin.name, "version": str(getattr(plugin, "version", "1")),
        "distribution": getattr(plugin, "distribution", None),
    }


def plugin_identity(plugin: Plugin, preset: Preset) -> dict[str, Any]:
    """Everything about a plugin that decides its output at `preset`."""
    return {**plugin_code(plugin), "settings": effective_settings(plugin, preset)}


def plugin_label(plugin: Plugin) -> str:
    """The name, followed by the parameters that differ from the plugin's defaults: `dh[lfc_weight=0]`
    (paths to content are left out: the identity holds their hash)."""
    changed = []
    for f in plugin.param_fields():
        if f.metadata.get("content"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        value = getattr(plugin, f.name)
        if value != default:
            changed.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
    return f"{plugin.name}[{','.join(changed)}]" if changed else plugin.name


def preset_identity(preset: Preset) -> dict[str, Any]:
    """The preset's full definition without its free-text summary."""
    return {k: v for k, v in preset.as_dict().items() if k != "summary"}


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """The commit of the checkout the engine runs from and whether tracked files differ from it."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit.strip(), None if status is None else bool(status.strip())


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """Versions of Python, uebench and the libraries that shape results (None when not installed)."""
    from . import __version__

    out: dict[str, str | None] = {"python": platform.python_version(), "uebench": __version__}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


@functools.lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """What CPU kernels, and so the last digits of a CPU result, depend on: the CPU, the instruction set torch
    dispatches to, and the BLAS and oneDNN builds."""
    cpu = _cpuinfo()
    config = torch.__config__.show()

    def found(pattern: str) -> str | None:
        match = re.search(pattern, config)
        return match.group(1) if match else None

    return {
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_id": "/".join(cpu.get(k, "?") for k in ("vendor_id", "cpu family", "model", "stepping")) if cpu else None,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "blas": found(r"BLAS_INFO=(\w+)"), "mkl": found(r"Math Kernel Library Version ([\w.-]+)"),
        "onednn": found(r"MKL-DNN (v[\d.]+)"), "cores": os.cpu_count(), "arch": platform.machine(),
    }


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
