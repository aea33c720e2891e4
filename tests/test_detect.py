"""`detect` (benchmark/tools/detect.py): simple detectors on raw pixels tell an obvious protection from clean data,
tell nothing from clean data itself, and a resumed call computes nothing twice."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark.tools.detect import DETECTION_FILE, Recipe, auroc, detect, detection_split


def test_auroc_ranks_positives_above_negatives_with_ties_half():
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert auroc(torch.zeros(4), labels) == 0.5
    with pytest.raises(ValueError, match="positives and negatives"):
        auroc(torch.zeros(2), torch.ones(2))


def test_each_image_is_shown_once_either_clean_or_protected():
    clean = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 2, 2).contiguous()
    protected = clean + 100
    train_x, train_y, test_x, test_y = detection_split(clean, protected, seed=0)
    images = torch.cat([train_x, test_x])[:, 0, 0, 0].long()
    labels = torch.cat([train_y, test_y])
    assert len(test_x) == 20 and sorted((images % 100).tolist()) == list(range(100))  # every image, once
    assert torch.equal(labels, (images >= 100).float()) and labels.sum() == 50


def test_a_blurred_set_is_detected_clean_data_is_not_and_a_rerun_computes_nothing(tmp_path, smoke_config):
    recipe = Recipe(epochs=5)
    rows = detect(smoke_config, ["cuda", "clean"], [0], tmp_path, recipe)
    by = {(r["method"], r["detector"]): r for r in rows}
    assert set(by) == {(m, d) for m in ("cuda", "clean") for d in ("linear", "mlp")}
    assert by[("cuda", "linear")]["auroc"] > 0.9 and by[("cuda", "mlp")]["auroc"] > 0.9  # measured: 0.97
    assert all(abs(by[("clean", d)]["auroc"] - 0.5) < 0.15 for d in ("linear", "mlp"))
    assert by[("cuda", "linear")]["test_size"] == 200 and len({r["detection_id"] for r in rows}) == 4
    assert detect(smoke_config, ["cuda", "clean"], [0], tmp_path, recipe) == []  # resumed: all there
    written = [json.loads(line) for line in (tmp_path / DETECTION_FILE).read_text().splitlines()]
    assert [r["detection_id"] for r in written] == [r["detection_id"] for r in rows]
    assert detect(smoke_config, ["cuda"], [0], tmp_path, Recipe(epochs=6)) != []  # another recipe: new rows


def test_a_bad_method_fails_before_any_work(tmp_path, smoke_config):
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        detect(smoke_config, ["cuda", "nope"], [0], tmp_path)
    assert not (tmp_path / DETECTION_FILE).exists()
