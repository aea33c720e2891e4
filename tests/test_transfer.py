"""`pack-data` / `unpack-data` (benchmark/tools/transfer.py): a data root cut into parts under a transfer limit comes
back byte for byte, a missing or altered part is named, and nothing is extracted outside the target."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from benchmark.tools.transfer import MANIFEST, pack, unpack


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "root"
    (root / "set" / "sub").mkdir(parents=True)
    (root / "set" / "a.bin").write_bytes(os.urandom(40_000))  # random: gzip cannot shrink it under the parts
    (root / "set" / "sub" / "b.txt").write_text("labels\n" * 100)
    return root


def test_parts_under_the_limit_come_back_byte_for_byte(folder, tmp_path):
    manifest = pack(folder, "set", tmp_path / "parts", part_mib=0.01)
    assert len(manifest["parts"]) >= 4 and all(p["bytes"] <= 0.01 * 2**20 for p in manifest["parts"])
    again = pack(folder, "set", tmp_path / "parts2", part_mib=0.01)
    assert again["sha256"] == manifest["sha256"]  # the same folder packs to the same bytes
    out = unpack(tmp_path / "parts", tmp_path / "out", dataset=None)
    for name in ("set/a.bin", "set/sub/b.txt"):
        assert (out / name).read_bytes() == (folder / name).read_bytes()


def test_a_missing_or_altered_part_is_named(folder, tmp_path):
    manifest = pack(folder, "set", tmp_path / "parts", part_mib=0.01)
    second = tmp_path / "parts" / manifest["parts"][1]["name"]
    data = second.read_bytes()
    second.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match=f"part {second} is corrupt"):
        unpack(tmp_path / "parts", tmp_path / "out", dataset=None)
    second.unlink()
    with pytest.raises(FileNotFoundError, match=f"part {second.name} is missing"):
        unpack(tmp_path / "parts", tmp_path / "out", dataset=None)


def test_an_archive_member_outside_the_manifest_is_refused(tmp_path):
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("set/../../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    data = buffer.getvalue()
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "set.tgz.000").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    (parts / MANIFEST).write_text(json.dumps({"folder": "set", "sha256": sha, "files": {},
                                              "parts": [{"name": "set.tgz.000", "bytes": len(data), "sha256": sha}]}))
    with pytest.raises(ValueError, match="refusing archive member 'set/../../evil.txt'"):
        unpack(parts, tmp_path / "out" / "inner", dataset=None)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_real_cifar10_travels_in_three_parts_and_passes_its_published_md5s(data_root, tmp_path):
    manifest = pack(data_root, "cifar-10-batches-py", tmp_path / "parts")
    assert len(manifest["parts"]) == 3 and all(p["bytes"] <= 60 * 2**20 for p in manifest["parts"])
    unpack(tmp_path / "parts", tmp_path / "data")  # loads both splits: torchvision's MD5s hold
