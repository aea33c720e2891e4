"""Imported protected sets (`file:PATH`) and the export of ours: formats, checks, identity, round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.data import load_dataset
from benchmark.imported import parse_budget, place, read_protected


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_root):
    """`ops` at smoke exported as .npz, .pt and a PNG folder, with the run arguments that share its cache."""
    root = tmp_path_factory.mktemp("exported")
    common = ["--preset", "smoke", "--data-root", data_root, "--cache-dir", str(root / "cache"), "--device", "cpu"]
    for target in ("ops_npz.npz", "ops_pt.pt", "ops_png"):
        assert main(["export", "ops", "--out", str(root / target), *common]) == 0
    return root, common


def _rows(path) -> dict[str, dict]:
    return {r["method"]: r for r in map(json.loads, (path / "results.jsonl").read_text().splitlines())}


def test_export_then_import_gives_the_same_set_and_the_same_cell(exported, data_root):
    root, common = exported
    files = ",".join(f"file:{root / t}" for t in ("ops_npz.npz", "ops_pt.pt", "ops_png"))
    assert main(["run", "--methods", f"ops,{files}", "--no-clean", "--defenses", "none", "--out", str(root / "run"),
                 "--budget", "ops_png=l0:1", "--no-progress", *common]) == 0
    rows = _rows(root / "run")
    assert set(rows) == {"ops", "ops_npz", "ops_pt", "ops_png"}
    ours = rows.pop("ops")
    for name, row in rows.items():
        assert row["final_acc"] == ours["final_acc"], name
        assert row["perturbation"] == ours["perturbation"], name
        assert row["method_params"]["path"].startswith(str(root))
        assert row["identity"]["method"]["settings"]["path"].startswith("sha256:")
    assert rows["ops_png"]["budget"] == "L0 ≤ 1 pixel" and rows["ops_npz"]["budget"].startswith("unbounded")


def test_two_sets_with_one_name_are_refused_before_any_work(exported, capsys):
    root, common = exported
    (root / "other").mkdir(exist_ok=True)
    (root / "other" / "ops_npz.npz").write_bytes((root / "ops_npz.npz").read_bytes())
    assert main(["run", "--methods", f"file:{root / 'ops_npz.npz'},file:{root / 'other' / 'ops_npz.npz'}",
                 "--out", str(root / "run-twice"), "--no-progress", *common]) == 2
    assert "would both be method 'ops_npz'; rename the file" in capsys.readouterr().err


def test_an_npz_saved_by_numpy_code_is_read_without_pickle(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", x=x, y=np.arange(4))
    data = read_protected(tmp_path / "mine.npz")
    assert data["x"].shape == (4, 3, 32, 32) and torch.equal(data["x"][1].permute(1, 2, 0), torch.from_numpy(x[1]))
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        read_protected(tmp_path / "objects.npz")


def test_bad_imports_are_errors_that_name_the_numbers(tmp_path, data_root):
    split = load_dataset("cifar10", True, data_root)
    few = split.images[:10].permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "short.npz", x=few)
    with pytest.raises(ValueError, match="10 images, the training split has 50000; give `indices`"):
        place(tmp_path / "short.npz", split.images, split.labels)
    np.savez(tmp_path / "far.npz", x=few, indices=np.arange(49_995, 50_005))
    with pytest.raises(ValueError, match="5 indices outside the training split's 0..49999"):
        place(tmp_path / "far.npz", split.images, split.labels)
    labels = split.labels[:10].numpy().copy()
    labels[:3] = (labels[:3] + 1) % 10
    np.savez(tmp_path / "relabelled.npz", x=few, y=labels, indices=np.arange(10))
    with pytest.raises(ValueError, match="3 of 10 labels disagree"):
        place(tmp_path / "relabelled.npz", split.images, split.labels)
    np.savez(tmp_path / "same.npz", x=few, indices=np.arange(10))
    with pytest.warns(UserWarning, match="identical to the clean ones"):
        place(tmp_path / "same.npz", split.images, split.labels)


def test_a_partial_import_protects_only_its_positions_and_the_budget_is_checked(tmp_path, data_root):
    split = load_dataset("cifar10", True, data_root)
    x = (split.images[:20].int() + 12).clamp(0, 255).to(torch.uint8)
    np.savez(tmp_path / "part.npz", x=x.permute(0, 2, 3, 1).numpy(), indices=np.arange(20))
    args = ["run", "--preset", "smoke", "--methods", f"file:{tmp_path / 'part.npz'}", "--no-clean", "--defenses",
            "none", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--data-root", data_root,
            "--device", "cpu", "--no-progress"]
    assert main([*args, "--budget", "part=linf:8"]) == 1  # 12/255 > 8/255: the set is refused, as a plugin's
    (row,) = _rows(tmp_path / "run").values()
    assert row["status"] == "failed" and "violates its linf budget" in row["error"]
    assert main([*args, "--budget", "part=linf:12", "--out", str(tmp_path / "run2")]) == 0
    (row,) = _rows(tmp_path / "run2").values()
    assert row["method_label"] == "part[budget_spec=linf:12]" and row["perturbation"]["linf"] == pytest.approx(12 / 255)
    assert 0 < row["perturbation"]["changed_fraction"] < 0.05  # only those of the 20 in the smoke subset


def test_budget_specs():
    assert parse_budget("linf:8").eps == pytest.approx(8 / 255) and parse_budget("l0:1").eps == 1
    with pytest.raises(ValueError, match="valid forms: linf:8"):
        parse_budget("linf8")


def test_png_folders_in_the_apbench_and_iss_layouts_and_em_perturbations(tmp_path, data_root):
    from PIL import Image

    split = load_dataset("cifar10", True, data_root)
    for folder in (tmp_path / "iss", tmp_path / "apbench" / "data"):  # {i}.png; APBench adds data/
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray((255 - split.images[i]).permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    for root in (tmp_path / "iss", tmp_path / "apbench"):
        x, positions = place(root, split.images, split.labels)
        assert positions.tolist() == [0, 1, 2] and torch.equal(x, 255 - split.images[:3])

    delta = torch.zeros(10, 3, 32, 32)
    delta[:, 0] = 4 / 255  # class-wise, as EM's perturbation.pt for class-wise noise
    torch.save(delta, tmp_path / "perturbation.pt")
    x, positions = place(tmp_path / "perturbation.pt", split.images, split.labels)
    assert len(positions) == 50_000
    assert torch.equal(x[:, 0], (split.images[:, 0].int() + 4).clamp(max=255).to(torch.uint8))
    torch.save(torch.ones(7, 3, 32, 32) * 0.01, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="7 perturbations, the training split has 50000 images and 10 classes"):
        place(tmp_path / "odd.pt", split.images, split.labels)
