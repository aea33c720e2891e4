"""`pack-data` and `unpack-data`: a data root carried to a machine that takes a limited number of bytes per transfer
(the lent GPU machine: 64 MiB a call). The dataset's folder goes into one gzip'd tar, cut into numbered parts under
the limit with a manifest of their SHA-256; on the other side the parts are checked, joined, extracted inside the
target only, and every file checked against the manifest's MD5, and CIFAR's against torchvision's published ones."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from torchvision.datasets.utils import calculate_md5

from ..data import load_dataset

MANIFEST = "manifest.json"
PART_MIB = 60  # under the device machine's 64 MiB per call, with room for the rest of the tree


def pack(data_root: str | os.PathLike, folder: str, out: str | os.PathLike, part_mib: float = PART_MIB) -> dict:
    """DATA_ROOT/FOLDER (e.g. `cifar-10-batches-py`) as OUT/FOLDER.tgz.000, .001, … of at most `part_mib` MiB each and
    OUT/manifest.json; returns the manifest."""
    source = Path(data_root) / folder
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a folder: pass --data-root, the folder that holds {folder}/")
    if part_mib <= 0:
        raise ValueError(f"--part-mib must be positive, got {part_mib}")
    files = sorted(p for p in source.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path in files:  # fixed order and metadata: the same folder packs to the same bytes
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source.parent).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    data = buffer.getvalue()
    size = int(part_mib * 2**20)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, start in enumerate(range(0, len(data), size)):
        chunk = data[start : start + size]
        name = f"{folder}.tgz.{i:03d}"
        (target / name).write_bytes(chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    manifest = {"folder": folder, "parts": parts, "sha256": hashlib.sha256(data).hexdigest(),
                "files": {p.relative_to(source.parent).as_posix(): {"bytes": p.stat().st_size,
                                                                     "md5": calculate_md5(str(p))} for p in files}}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def unpack(parts: str | os.PathLike, out: str | os.PathLike, dataset: str | None = "cifar10") -> Path:
    """Check PARTS/manifest.json's parts (a missing or altered one is named), join and extract them into OUT, check
    every file's MD5 against the manifest and, for `dataset`, load it (torchvision's MD5s); returns OUT."""
    source = Path(parts)
    manifest = json.loads((source / MANIFEST).read_text())
    joined = bytearray()
    for part in manifest["parts"]:
        path = source / part["name"]
        if not path.is_file():
            have = sorted(p.name for p in source.glob(f"{manifest['folder']}.tgz.*"))
            raise FileNotFoundError(f"part {part['name']} is missing from {source} (there: {', '.join(have) or 'none'})")
        chunk = path.read_bytes()
        if hashlib.sha256(chunk).hexdigest() != part["sha256"]:
            raise ValueError(f"part {path} is corrupt (SHA-256 differs from the manifest's; {len(chunk)} bytes, "
                             f"expected {part['bytes']}): copy it again")
        joined += chunk
    if hashlib.sha256(joined).hexdigest() != manifest["sha256"]:
        raise ValueError("the joined parts differ from the packed archive: parts from another pack?")
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(bytes(joined)), mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:  # regular files, inside the target, that the manifest lists: nothing else
            if not member.isfile() or member.name not in manifest["files"]:
                raise ValueError(f"refusing archive member {member.name!r}: not a file the manifest lists")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python ≥ 3.10.12 also filters
        tar.extractall(target, members=members, **safe)
    for name, expected in manifest["files"].items():
        if calculate_md5(str(target / name)) != expected["md5"]:
            raise ValueError(f"{target / name} differs from the packed file after extraction")
    if dataset is not None:
        for train in (True, False):
            load_dataset(dataset, train, target)  # the published MD5s, as any run checks them
    return target
