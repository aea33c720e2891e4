"""Galleries of protected sets (benchmark/report/gallery.py): the PNG's layout and pixels, the one the grid saves per
(method, seed) without ever costing a cell, and `python -m benchmark show`."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import benchmark.report.gallery as gallery
from benchmark.cli import main
from benchmark.engine.config import GridConfig
from benchmark.engine.grid import run_grid
from benchmark.report.gallery import (
    GALLERY_DIR,
    GAP,
    GROUP_GAP,
    HEADER_H,
    LABEL_W,
    MID_GREY,
    amplify,
    draw_gallery,
    first_per_class,
    gallery_name,
    panel_origin,
    write_gallery,
)

CLASSES = ["airplane", "automobile", "a-class-name-far-too-long-for-its-column"]


def _set() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """12 random 8×6 images of 3 classes (labels 2, 0, 1, 2, 0, 1, …) in 20..235, and a protected copy changed by
    +6 in rows 0–1 and by −3 in row 2 of every image, unchanged elsewhere."""
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(20, 236, (12, 3, 8, 6), generator=gen, dtype=torch.uint8)
    labels = torch.tensor([2, 0, 1] * 4)
    delta = torch.zeros(clean.shape, dtype=torch.int16)
    delta[:, :, :2] = 6
    delta[:, :, 2] = -3
    return clean, (clean.to(torch.int16) + delta).to(torch.uint8), labels


def _panel(picture: np.ndarray, row: int, image: int, panel: int, width: int, height: int) -> np.ndarray:
    x, y = panel_origin(row, image, panel, width, height)
    return picture[y:y + height, x:x + width]


def test_first_per_class_takes_the_first_images_of_each_class():
    labels = torch.tensor([2, 0, 1, 2, 0, 1, 2, 0, 1, 1])
    assert first_per_class(labels, 3, 2) == [[1, 4], [2, 5], [0, 3]]
    assert first_per_class(labels, 4, 3) == [[1, 4, 7], [2, 5, 8], [0, 3, 6], []]


def test_the_gallery_png_has_one_row_per_class_and_three_panels_per_image(tmp_path):
    clean, protected, labels = _set()
    path = write_gallery(tmp_path / "g.png", clean, protected, labels, CLASSES, per_class=2)
    picture = np.asarray(Image.open(path).convert("RGB"))
    width, height = 6 * 2, 8 * 2  # upscaled ×2
    assert picture.shape[1] == LABEL_W + 2 * 3 * (width + GAP) + GROUP_GAP  # 2 images × (clean, protected, δ)
    assert picture.shape[0] == HEADER_H + len(CLASSES) * (height + GAP)
    assert draw_gallery(clean, protected, labels, CLASSES * 5).size[1] == HEADER_H + 10 * (height + GAP)  # 10 rows
    assert draw_gallery(clean, protected, labels, CLASSES, per_class=3).size[0] == \
        LABEL_W + 3 * 3 * (width + GAP) + 2 * GROUP_GAP


def test_clean_and_protected_panels_are_the_uint8_images_and_the_perturbation_is_grey_where_zero(tmp_path):
    clean, protected, labels = _set()
    picture = np.asarray(Image.open(write_gallery(tmp_path / "g.png", clean, protected, labels, CLASSES)))
    width, height = 12, 16
    for row, positions in enumerate(first_per_class(labels, 3, 2)):
        for image, position in enumerate(positions):
            for panel, pixels in enumerate((clean, protected)):
                want = pixels[position].permute(1, 2, 0).numpy()
                want = want.repeat(2, axis=0).repeat(2, axis=1)  # nearest-neighbour ×2
                np.testing.assert_array_equal(_panel(picture, row, image, panel, width, height), want)
            delta = _panel(picture, row, image, 2, width, height)
            assert (delta[:4] == 255).all()  # +6, the image's largest change: full range up
            assert (delta[4:6] == MID_GREY - 64).all()  # −3: half range down
            assert (delta[6:] == MID_GREY).all()  # unchanged: mid-grey


def test_an_unchanged_image_amplifies_to_mid_grey():
    clean, _, _ = _set()
    assert (amplify(clean, clean) == MID_GREY).all()


def test_gallery_names_are_file_names():
    assert gallery_name("dh[lfc_weight=0]", 1) == "dh_lfc_weight_0_-seed1.png"
    assert gallery_name("../x", 0) == "_x-seed0.png"


@pytest.fixture(scope="module")
def grid(tmp_path_factory, data_root):
    """clean and lsp (class_sep changed, so its label carries it) at seeds 0 and 1, smoke preset, under `none`."""
    root = tmp_path_factory.mktemp("grid")
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(root / "cache"), device="cpu",
                        method_args={"lsp": {"class_sep": "5"}})
    summary = run_grid(["clean", "lsp"], ["none"], [0, 1], root / "run", config, show_progress=False)
    assert summary.failed == 0
    return root, config


def test_the_grid_saves_one_gallery_per_method_and_seed(grid):
    root, config = grid
    names = sorted(p.name for p in (root / "run" / GALLERY_DIR).iterdir())
    assert names == ["clean-seed0.png", "clean-seed1.png", "lsp_class_sep_5_-seed0.png", "lsp_class_sep_5_-seed1.png"]
    picture = np.asarray(Image.open(root / "run" / GALLERY_DIR / "clean-seed0.png"))
    assert picture.shape == (HEADER_H + 10 * (64 + GAP), LABEL_W + 2 * 3 * (64 + GAP) + GROUP_GAP, 3)
    assert (_panel(picture, 0, 0, 2, 64, 64) == MID_GREY).all()  # clean changes nothing


def test_a_gallery_that_fails_warns_and_costs_no_cell_and_one_that_exists_is_kept(grid, monkeypatch):
    root, config = grid
    folder = root / "run" / GALLERY_DIR
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "clean-seed1.png").unlink()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gallery, "write_gallery", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_grid(["clean", "lsp"], ["grayscale"], [0, 1], root / "run", config, show_progress=False)
    assert summary.ran == 4 and summary.failed == 0
    messages = [str(w.message) for w in caught if "gallery" in str(w.message)]
    assert messages == ["gallery of 'clean' (seed 1) not written: OSError: disk full"]  # the others exist: not redrawn
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {k: v for k, v in kept.items() if k != "clean-seed1.png"}


def test_show_draws_the_grids_gallery_from_the_cache(grid, data_root, tmp_path, capsys):
    root, config = grid
    out = tmp_path / "lsp.png"
    assert main(["show", "lsp", "--method-args", "lsp.class_sep=5", "--preset", "smoke", "--seed", "1", "--data-root",
                 data_root, "--cache-dir", config.cache_dir, "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gallery of lsp[class_sep=5]" in printed and "set from the cache" in printed
    assert "settings at smoke: class_sep=5.0, patch_size=0" in printed  # lsp's settings, none resolved by a preset
    assert out.read_bytes() == (root / "run" / GALLERY_DIR / "lsp_class_sep_5_-seed1.png").read_bytes()


def test_show_rejects_an_unknown_method_and_an_out_that_is_no_png(tmp_path, capsys):
    assert main(["show", "nope", "--preset", "quick", "--out", str(tmp_path / "g.png")]) == 2
    assert "unknown method 'nope'; valid methods: clean, dh, dh-8, dh-robust, em," in capsys.readouterr().err
    assert main(["show", "em", "--preset", "quick", "--out", str(tmp_path / "g.jpg")]) == 2
    assert "--out must be a .png file" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_gallery_of_a_set_that_changed_is_drawn_again(tmp_path, data_root, monkeypatch):
    """Same label and seed, new plugin version: a new set key, so the saved picture is replaced."""
    from benchmark.registry import methods
    from benchmark.report.gallery import gallery_key

    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path / "cache"), device="cpu")
    run_grid(["lsp"], ["none"], [0], tmp_path / "run", config, show_progress=False)
    path = tmp_path / "run" / GALLERY_DIR / "lsp-seed0.png"
    before = gallery_key(path)
    assert before
    monkeypatch.setattr(methods.get("lsp"), "version", "99")
    run_grid(["lsp"], ["none"], [0], tmp_path / "run", config, show_progress=False)
    assert gallery_key(path) not in (None, before)
